//! The [`Strategy`] trait and the glue that exports it.

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;

use crate::bindings::host::types::{self as wit, Admission, Decision, Hooks, StrategyInfo};
use crate::event::{CallInfo, ErrorEvent, Outcomes};

/// A recovery strategy: decides whether attempts may start and what to do
/// when one fails. Export one with [`export_strategy!`](crate::export_strategy).
///
/// The host creates instances with [`init`](Strategy::init) and recycles
/// them at any time, so `&self` holds only what `init` derived from the
/// config. Anything to remember between calls goes in [`state`](crate::state).
pub trait Strategy: Sized + 'static {
    /// The plugin's config, deserialized from its table in `mender.toml`.
    type Config: DeserializeOwned;

    /// Build an instance from a parsed config. An `Err` rejects the plugin
    /// at load time with that message.
    fn init(config: Self::Config) -> Result<Self, String>;

    /// The hooks the host should call; it skips the others entirely.
    fn hooks(&self) -> Hooks;

    /// Successes slower than this (ms) are counted for this plugin as slow
    /// calls ([`Outcomes::slow_calls`]). Default: none, not counted.
    fn slow_call_threshold(&self) -> Option<u64> {
        None
    }

    /// May this attempt start? `recent` is what happened on the service
    /// since this plugin was last called for it. Default: allow, no lease.
    fn admit(&self, call: &CallInfo, recent: &Outcomes) -> Admission {
        let _ = (call, recent);
        Admission::allow()
    }

    /// An attempt failed: what now? `recent` includes this failure.
    /// Default: [`Decision::Pass`] (no opinion).
    fn on_error(&self, event: &ErrorEvent, recent: &Outcomes) -> Decision {
        let _ = (event, recent);
        Decision::Pass
    }
}

/// Where [`export_strategy!`](crate::export_strategy) keeps the instance.
#[doc(hidden)]
pub type Slot<T> = LocalKey<RefCell<Option<T>>>;

/// Run `f` on the instance `init` stored; a hook before `init` traps.
pub(crate) fn with_instance<T, R>(
    slot: &'static Slot<T>,
    hook: &str,
    f: impl FnOnce(&T) -> R,
) -> R {
    slot.with(|cell| {
        let instance = cell.borrow();
        let instance = instance
            .as_ref()
            .unwrap_or_else(|| panic!("mender-guest: `{hook}` called before a successful `init`"));
        f(instance)
    })
}

/// Make a panic log its message and location through the host before the
/// trap, which by itself says only "unreachable" (there is no stderr on
/// `wasm32-unknown-unknown`). Set at every `init`, the first call an
/// instance gets.
pub(crate) fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("(no message)");
        let location = match info.location() {
            Some(at) => format!(" at {}:{}:{}", at.file(), at.line(), at.column()),
            None => String::new(),
        };
        crate::log::error(&format!("plugin panicked{location}: {message}"));
    }));
}

#[doc(hidden)]
pub fn init<S: Strategy>(slot: &'static Slot<S>, config: String) -> Result<StrategyInfo, String> {
    log_panics();
    let config = crate::config::parse::<S::Config>(&config)?;
    let instance = S::init(config)?;
    let hooks = instance.hooks();
    let slow_call_threshold = instance.slow_call_threshold();
    slot.with(|cell| *cell.borrow_mut() = Some(instance));
    Ok(StrategyInfo {
        hooks,
        slow_call_threshold,
    })
}

#[doc(hidden)]
pub fn admit<S: Strategy>(
    slot: &'static Slot<S>,
    call: wit::CallInfo,
    recent: wit::Outcomes,
) -> Admission {
    let (call, recent) = (CallInfo::from_wit(call), Outcomes::from_wit(recent));
    with_instance(slot, "admit", |s| s.admit(&call, &recent))
}

#[doc(hidden)]
pub fn on_error<S: Strategy>(
    slot: &'static Slot<S>,
    event: wit::ErrorEvent,
    recent: wit::Outcomes,
) -> Decision {
    let (event, recent) = (ErrorEvent::from_wit(event), Outcomes::from_wit(recent));
    with_instance(slot, "on-error", |s| s.on_error(&event, &recent))
}

/// Export `$ty`, a [`Strategy`], as this component's `strategy` interface.
///
/// Invoke it once, at the root of a `cdylib` crate.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __MENDER_STRATEGY: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct __MenderStrategyExport;

            impl $crate::__private::StrategyGuest for __MenderStrategyExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::StrategyInfo, ::std::string::String>
                {
                    $crate::__private::strategy::init::<$ty>(&__MENDER_STRATEGY, config)
                }

                fn admit(
                    call: $crate::__private::CallInfo,
                    recent: $crate::__private::Outcomes,
                ) -> $crate::prelude::Admission {
                    $crate::__private::strategy::admit::<$ty>(&__MENDER_STRATEGY, call, recent)
                }

                fn on_error(
                    event: $crate::__private::ErrorEvent,
                    recent: $crate::__private::Outcomes,
                ) -> $crate::prelude::Decision {
                    $crate::__private::strategy::on_error::<$ty>(&__MENDER_STRATEGY, event, recent)
                }
            }

            // Only wasm gets the exported symbols: their names (`ns:pkg/iface@ver#fn`)
            // are not valid in a native linker's version script, and natively
            // nothing could call them anyway.
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::strategy::export_strategy_world!(
                __MenderStrategyExport with_types_in $crate::bindings::strategy
            );

            // Off wasm, keep the plugin's code "used" so that checking it
            // natively (clippy, tests) reports real dead code, not all of it.
            #[cfg(not(target_arch = "wasm32"))]
            #[used]
            static __MENDER_KEEP_STRATEGY: fn() = || {
                let _ = <__MenderStrategyExport as $crate::__private::StrategyGuest>::init;
                let _ = <__MenderStrategyExport as $crate::__private::StrategyGuest>::admit;
                let _ = <__MenderStrategyExport as $crate::__private::StrategyGuest>::on_error;
            };
        };
    };
}
