//! The [`FallbackHandler`] trait and the glue that exports it.

use serde::de::DeserializeOwned;

use crate::bindings::host::types::{self as wit, FallbackAnswer, HandlerInfo, RecordedResult};
use crate::event::ErrorEvent;
use crate::strategy::{Slot, log_panics, with_instance};

/// A fallback handler: answers instead of a call that failed for good.
/// Export one with [`export_fallback!`](crate::export_fallback).
///
/// As for strategies, instances are recycled at any time: keep durable
/// state in [`state`](crate::state).
pub trait FallbackHandler: Sized + 'static {
    /// The plugin's config, deserialized from its table in `mender.toml`.
    type Config: DeserializeOwned;

    /// Build an instance from a parsed config. An `Err` rejects the plugin
    /// at load time with that message.
    fn init(config: Self::Config) -> Result<Self, String>;

    /// Whether the host should record successful results of the services
    /// this handler serves, so that [`serve`](FallbackHandler::serve) gets
    /// the last one. Recording costs one encode per success. Default: no.
    fn records_results(&self) -> bool {
        false
    }

    /// The call failed for good with `event`: answer instead, or `None` to
    /// let the next handler (or the failure) through. `recorded` is the last
    /// successful result of this operation, if recording is on and one exists.
    fn serve(
        &self,
        event: &ErrorEvent,
        recorded: Option<&RecordedResult>,
    ) -> Option<FallbackAnswer>;
}

#[doc(hidden)]
pub fn init<H: FallbackHandler>(
    slot: &'static Slot<H>,
    config: String,
) -> Result<HandlerInfo, String> {
    log_panics();
    let config = crate::config::parse::<H::Config>(&config)?;
    let instance = H::init(config)?;
    let records_results = instance.records_results();
    slot.with(|cell| *cell.borrow_mut() = Some(instance));
    Ok(HandlerInfo { records_results })
}

#[doc(hidden)]
pub fn serve<H: FallbackHandler>(
    slot: &'static Slot<H>,
    event: wit::ErrorEvent,
    recorded: Option<RecordedResult>,
) -> Option<FallbackAnswer> {
    let event = ErrorEvent::from_wit(event);
    with_instance(slot, "serve", |h| h.serve(&event, recorded.as_ref()))
}

/// Export `$ty`, a [`FallbackHandler`], as this component's
/// `fallback-handler` interface.
///
/// Invoke it once, at the root of a `cdylib` crate.
#[macro_export]
macro_rules! export_fallback {
    ($ty:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __MENDER_FALLBACK: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct __MenderFallbackExport;

            impl $crate::__private::FallbackGuest for __MenderFallbackExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::HandlerInfo, ::std::string::String>
                {
                    $crate::__private::fallback::init::<$ty>(&__MENDER_FALLBACK, config)
                }

                fn serve(
                    event: $crate::__private::ErrorEvent,
                    recorded: ::std::option::Option<$crate::prelude::RecordedResult>,
                ) -> ::std::option::Option<$crate::prelude::FallbackAnswer> {
                    $crate::__private::fallback::serve::<$ty>(&__MENDER_FALLBACK, event, recorded)
                }
            }

            // Only wasm gets the exported symbols: their names (`ns:pkg/iface@ver#fn`)
            // are not valid in a native linker's version script, and natively
            // nothing could call them anyway.
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::fallback::export_fallback_world!(
                __MenderFallbackExport with_types_in $crate::bindings::fallback
            );

            // Off wasm, keep the plugin's code "used" so that checking it
            // natively (clippy, tests) reports real dead code, not all of it.
            #[cfg(not(target_arch = "wasm32"))]
            #[used]
            static __MENDER_KEEP_FALLBACK: fn() = || {
                let _ = <__MenderFallbackExport as $crate::__private::FallbackGuest>::init;
                let _ = <__MenderFallbackExport as $crate::__private::FallbackGuest>::serve;
            };
        };
    };
}
