;; Cairn hostile module: a table of 100 million elements (800 MB of pointers).
;; Expected: rejected at validation (TableTooLarge).
(module
  (memory (export "memory") 1)
  (table 100000000 funcref)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))
