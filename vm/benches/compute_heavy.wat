;; Benchmark job (vm/benches/vm.rs, examples/meter_cycles.rs).
(module (memory (export "memory") 1)
    (func (export "cairn_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "cairn_run") (param i32 i32) (result i64)
      (local $i i32) (local $x i64)
      (local.set $x (i64.const 88172645463325252))
      (loop $next
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 2000000))))
      (i64.store (i32.const 0) (local.get $x))
      (i64.const 8)))
