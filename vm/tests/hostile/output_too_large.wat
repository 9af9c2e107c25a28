;; Cairn hostile module: grows its memory to 2 MiB and returns all of it as the output,
;; over the 64 KiB limit. Expected: OutputTooLarge, no output copied.
(module
  (memory (export "memory") 32)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (i64.const 0x200000)))
