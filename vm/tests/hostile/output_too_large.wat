;; Cairn hostile module: declares 5 MiB of memory and returns all of it as the output, over
;; the 4 MiB limit. Expected: OutputTooLarge, no output copied.
(module
  (memory (export "memory") 80)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (i64.const 0x500000)))
