;; Cairn hostile module: the wasm header followed by a section of unknown id 0x7f with a
;; length running past the end of the bytes. Expected: rejected at validation (Malformed).
(module binary
  "\00asm" "\01\00\00\00"
  "\7f\ff\ff\ff\ff\0f" "\de\ad\be\ef")
