;; Cairn hostile module: a start function that loops forever, which would run at
;; instantiation, outside `cairn_run`. Expected: rejected at validation (StartFunction).
(module
  (memory (export "memory") 1)
  (func $forever (loop $again (br $again)))
  (start $forever)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))
