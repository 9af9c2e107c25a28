;; Cairn hostile module: asks for 4 GiB at once, then one page at a time, then traps
;; like an allocator that ran out. Expected: MemoryLimit; the memory never exceeds
;; VmConfig::memory_pages_max.
(module
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 65536)))
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))
