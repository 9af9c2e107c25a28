;; Cairn hostile module: returns an output of 100 bytes at 0xFFFF0000, far outside its
;; 1-page memory. Expected: Trap, no output.
(module
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (i64.const 0xFFFF000000000064)))
