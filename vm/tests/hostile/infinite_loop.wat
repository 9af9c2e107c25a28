;; Cairn hostile module: `cairn_run` loops forever. Expected: OutOfFuel, fuel_used = limit.
(module
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
