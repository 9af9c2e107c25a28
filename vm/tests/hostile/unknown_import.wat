;; Cairn hostile module: imports WASI's fd_write (an outside world). Expected: rejected at
;; validation (ForbiddenImport).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))
