;; A strategy written by hand in the component-model text format: proof
;; that a plugin needs no particular language or SDK, only the contract in
;; wit/ and its canonical ABI. Built with `wasm-tools parse` (see ./build);
;; the .wasm beside it is committed so tests need no toolchain.
;;
;; What it decides (hook: on-error only):
;; - connect and timeout failures: retry after a fixed 50 ms;
;; - rate-limited: retry after the upstream's retry-after if it gave one,
;;   else after the fixed 50 ms;
;; - anything else: pass (let the next strategy, or the host, decide).
;; Its config must be empty (`{}`): init refuses anything else, saying so.
(component
  (core module $strategy
    (memory (export "memory") 1)
    ;; The text init answers when the config is not empty.
    (data (i32.const 256) "fixed-retry takes no config")

    ;; A bump allocator for what the host lowers into this instance (the
    ;; config string, the event's strings and lists). Everything is
    ;; dropped after each hook returns (see $reset), so the heap never
    ;; grows past one call's arguments.
    (global $heap (mut i32) (i32.const 1024))
    (func (export "realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $ptr i32) (local $end i32)
      ;; ptr = heap rounded up to align (a power of two)
      (local.set $ptr
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      ;; Grow memory to cover the allocation; a refused grow traps.
      (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.sub
                    (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                    (memory.size)))
                (i32.const -1))
            (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $ptr))
    ;; post-return of every hook: the call's arguments are no longer needed.
    (func $reset (export "reset") (param i32)
      (global.set $heap (i32.const 1024)))

    ;; init(config: string) -> result<strategy-info, string>, returned
    ;; through the area at 16: [0] discriminant, [4..] payload.
    (func (export "init") (param $ptr i32) (param $len i32) (result i32)
      (if (i32.and
            (i32.eq (local.get $len) (i32.const 2))
            (i32.eq (i32.load16_u (local.get $ptr)) (i32.const 0x7d7b))) ;; "{}"
        (then
          (i32.store8 (i32.const 16) (i32.const 0)) ;; ok
          (i32.store8 (i32.const 20) (i32.const 2)) ;; hooks: on-error
          (return (i32.const 16))))
      (i32.store8 (i32.const 16) (i32.const 1)) ;; err(string)
      (i32.store (i32.const 20) (i32.const 256))
      (i32.store (i32.const 24) (i32.const 27))
      (i32.const 16))

    ;; admit(call, recent) -> admission: never called (the hooks flags
    ;; leave it out), but the interface has it. Answers allow with no
    ;; grant: discriminant 0 and zeroed options, at 64.
    (func (export "admit") (param $args i32) (result i32)
      (memory.fill (i32.const 64) (i32.const 0) (i32.const 48))
      (i32.const 64))

    ;; on-error(event, recent) -> decision. Arguments arrive through one
    ;; pointer (too many to pass flat); the error-event record's layout:
    ;; kind (u8) at 16, retry-after (option<u64>) at 40 (tag) and 48.
    ;; The decision goes out through the area at 128: [0] discriminant
    ;; (0 pass, 1 retry), [8] the retry's delay in ms.
    (func (export "on-error") (param $event i32) (result i32)
      (local $kind i32)
      (local.set $kind (i32.load8_u offset=16 (local.get $event)))
      (memory.fill (i32.const 128) (i32.const 0) (i32.const 24))
      (block $pass
        (block $rate_limited
          (block $fixed
            (br_table $fixed $fixed $rate_limited $pass (local.get $kind)))
          ;; connect (0), timeout (1): the fixed delay.
          (i32.store8 (i32.const 128) (i32.const 1))
          (i64.store (i32.const 136) (i64.const 50))
          (return (i32.const 128)))
        ;; rate-limited (2): the upstream's retry-after, if it gave one.
        (i32.store8 (i32.const 128) (i32.const 1))
        (i64.store (i32.const 136)
          (select
            (i64.load offset=48 (local.get $event))
            (i64.const 50)
            (i32.load8_u offset=40 (local.get $event))))
        (return (i32.const 128)))
      ;; Anything else: pass.
      (i32.const 128))
  )
  (core instance $s (instantiate $strategy))
  (alias core export $s "memory" (core memory $memory))
  (alias core export $s "realloc" (core func $realloc))

  ;; The contract's types, from wit/types.wit: imported as the instance
  ;; `mender:plugin/types@0.1.0` (types only, nothing to call), as every
  ;; plugin built from the WIT imports them, so that the hooks' types have
  ;; the names an exported function's types must have.
  (import "mender:plugin/types@0.1.0" (instance $types
    (type $tags (list (tuple string string)))
    (type $error-kind-def (enum "connect" "timeout" "rate-limited" "auth" "tool"
      "protocol" "resource" "cancelled" "rejected" "unknown"))
    (export "error-kind" (type $error-kind (eq $error-kind-def)))
    (type $call-info-def (record
      (field "service" string) (field "operation" string) (field "attempt" u32)
      (field "elapsed" u64) (field "deadline-left" (option u64))
      (field "idempotent" bool) (field "tags" $tags)))
    (export "call-info" (type $call-info (eq $call-info-def)))
    (type $error-event-def (record
      (field "service" string) (field "operation" string)
      (field "kind" $error-kind) (field "message" string)
      (field "status" (option s32)) (field "retry-after" (option u64))
      (field "attempt" u32) (field "elapsed" u64)
      (field "deadline-left" (option u64)) (field "idempotent" bool)
      (field "tags" $tags)))
    (export "error-event" (type $error-event (eq $error-event-def)))
    (type $outcomes-def (record
      (field "successes" u32) (field "failures" u32)
      (field "failures-by-kind" (list (tuple $error-kind u32)))
      (field "consecutive-failures" u32) (field "success-latency-total" u64)
      (field "leased-attempts" u32)))
    (export "outcomes" (type $outcomes (eq $outcomes-def)))
    (type $lease-def (record
      (field "ttl" u64) (field "max-attempts" (option u32))
      (field "until-failure" bool)))
    (export "lease" (type $lease (eq $lease-def)))
    (type $grant-def (record
      (field "attempt-timeout" (option u64)) (field "lease" (option $lease))))
    (export "grant" (type $grant (eq $grant-def)))
    (type $rejection-def (record (field "reason" string) (field "retry-after" (option u64))))
    (export "rejection" (type $rejection (eq $rejection-def)))
    (type $admission-def (variant
      (case "allow" $grant) (case "reject" $rejection) (case "wait" u64)))
    (export "admission" (type $admission (eq $admission-def)))
    (type $fallback-answer-def (record (field "body" string) (field "age" (option u64))))
    (export "fallback-answer" (type $fallback-answer (eq $fallback-answer-def)))
    (type $decision-def (variant
      (case "pass") (case "retry" u64) (case "fallback" $fallback-answer)
      (case "fail" string) (case "refresh-credentials")))
    (export "decision" (type $decision (eq $decision-def)))
    (type $hooks-def (flags "admit" "on-error"))
    (export "hooks" (type $hooks (eq $hooks-def)))
    (type $strategy-info-def (record (field "hooks" $hooks)))
    (export "strategy-info" (type $strategy-info (eq $strategy-info-def)))
  ))
  (alias export $types "call-info" (type $call-info))
  (alias export $types "error-event" (type $error-event))
  (alias export $types "outcomes" (type $outcomes))
  (alias export $types "admission" (type $admission))
  (alias export $types "decision" (type $decision))
  (alias export $types "strategy-info" (type $strategy-info))

  (func $init (param "config" string) (result (result $strategy-info (error string)))
    (canon lift (core func $s "init") (memory $memory) (realloc $realloc)
      (post-return (core func $s "reset"))))
  (func $admit (param "call" $call-info) (param "recent" $outcomes) (result $admission)
    (canon lift (core func $s "admit") (memory $memory) (realloc $realloc)
      (post-return (core func $s "reset"))))
  (func $on-error (param "event" $error-event) (param "recent" $outcomes) (result $decision)
    (canon lift (core func $s "on-error") (memory $memory) (realloc $realloc)
      (post-return (core func $s "reset"))))

  (instance $exports
    (export "init" (func $init))
    (export "admit" (func $admit))
    (export "on-error" (func $on-error)))
  (export "mender:plugin/strategy@0.1.0" (instance $exports))
)
