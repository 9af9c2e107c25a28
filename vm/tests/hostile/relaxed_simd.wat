;; Cairn hostile module: relaxed SIMD, whose results may differ between CPUs.
;; Expected: rejected at validation (Malformed).
(module
  (memory (export "memory") 1)
  (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cairn_run") (param i32 i32) (result i64)
    (v128.store (i32.const 0)
      (f32x4.relaxed_madd (v128.const f32x4 1 2 3 4) (v128.const f32x4 1 2 3 4) (v128.const f32x4 1 2 3 4)))
    (i64.const 16)))
