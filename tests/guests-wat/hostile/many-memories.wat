;; One core module with 7 linear memories of 16 MiB each (multi-memory;
;; few enough to pass the cap on the number of memories), every byte
;; written by its start function: 112 MiB of host memory if `memory-mib =
;; 16` capped each memory on its own.
  (core module $hoard
    (memory 256)
    (memory 256)
    (memory 256)
    (memory 256)
    (memory 256)
    (memory 256)
    (memory 256)
    (func $fill
      (memory.fill 0 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 1 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 2 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 3 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 4 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 5 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000))
      (memory.fill 6 (i32.const 0) (i32.const 0xA5) (i32.const 0x1000000)))
    (start $fill))
  (core instance (instantiate $hoard))
