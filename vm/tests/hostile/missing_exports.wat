;; Cairn hostile module: exports neither `memory` nor `cairn_alloc`. Expected: rejected at
;; validation (MissingExport).
(module
  (memory 1)
  (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))
