;; Cairn hostile module: a shared memory and an atomic read-modify-write (the threads
;; proposal, whose interleavings are nondeterministic). Expected: rejected at validation
;; (Malformed).
(module
  (memory (export "memory") 1 1 shared)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
    (i64.const 0)))
