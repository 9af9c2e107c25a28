;; Benchmark job (vm/benches/vm.rs, examples/meter_cycles.rs).
(module (memory (export "memory") 17)
    (func (export "cairn_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "cairn_run") (param i32 i32) (result i64)
      (local $pass i32) (local $a i32)
      (loop $passes
        (local.set $a (i32.const 65536))
        (loop $words
          (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (local.get $a)))
          (local.set $a (i32.add (local.get $a) (i32.const 4)))
          (br_if $words (i32.lt_u (local.get $a) (i32.const 1114112))))
        (local.set $pass (i32.add (local.get $pass) (i32.const 1)))
        (br_if $passes (i32.lt_u (local.get $pass) (i32.const 8))))
      (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const 8))))
