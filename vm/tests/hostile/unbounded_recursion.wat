;; Cairn hostile module: a function that calls itself without end. Expected: Trap, stopped
;; by the call-depth limit (VmConfig::call_depth_max) long before the stack runs out.
(module
  (memory (export "memory") 1)
  (func $down (param i64) (result i64)
    (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (call $down (i64.const 0))))
