;; Cairn hostile module: `cairn_run` takes three parameters and returns an i32.
;; Expected: rejected at validation (ExportSignature).
(module
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32 i32) (result i32) (i32.const 0)))
