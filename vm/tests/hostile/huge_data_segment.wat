;; Cairn hostile module: an active data segment placed 2 GiB into a 1-page memory.
;; Expected: Trap at instantiation, before any guest code runs (fuel 0), and no memory
;; reserved for it.
(module
  (memory (export "memory") 1)
  (data (i32.const 0x7fff0000) "this segment does not fit in the memory")
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))
