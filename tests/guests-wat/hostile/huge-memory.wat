;; A core module whose memory's minimum is 65,536 pages: 4 GiB, the whole
;; 32-bit address space, before any code runs.
  (core module $huge
    (memory 65536))
  (core instance (instantiate $huge))
