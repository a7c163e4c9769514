;; A core module whose start function never returns: the component can
;; never finish instantiating.
  (core module $spin
    (func $spin (loop $forever (br $forever)))
    (start $spin))
  (core instance (instantiate $spin))
