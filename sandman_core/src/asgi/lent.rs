//! Large `bytes` bodies lent to the IO thread instead of copied.
//!
//! A Python `bytes` is immutable, so while we hold a reference the IO thread may write
//! straight from its buffer without the GIL. For a 64 KiB chunk that saves a `memmove`
//! into cold memory and lets the kernel copy from memory the app just touched: the 1 MiB
//! stream and the 64 KiB echo both spend less CPU per response (bench/NOTES.md).
//!
//! The reference must be dropped under the GIL. The IO thread finishes with the buffer,
//! so [`LentBytes`] hands its object back through the bridge ([`Event::Release`]) and the
//! loop thread drops it in its next drain. PyO3's deferred-decref pool would also free it,
//! but only at whatever call into Rust happens next; the event makes the release a
//! property of this module rather than of the traffic that follows.
//!
//! Small bodies are still copied: below [`LEND_FROM`] the copy is cheaper than the
//! bookkeeping, and copying keeps their lifetime exactly the app's.

use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};

use crate::bridge::{Bridge, Event};

/// Bodies at least this long are lent, shorter ones copied.
pub const LEND_FROM: usize = 16 * 1024;

/// A Python object whose buffer the IO thread reads from.
pub enum Lent {
    /// A `bytes` object.
    Bytes(PyBackedBytes),
    /// A `str`'s UTF-8 form (kept alive by the `str` itself).
    Str(PyBackedStr),
}

/// The owner behind a lent [`Bytes`]: returns the object to the loop when dropped.
struct LentBytes {
    object: Option<Lent>,
    bridge: Arc<Bridge>,
}

impl AsRef<[u8]> for LentBytes {
    fn as_ref(&self) -> &[u8] {
        match self.object.as_ref().expect("present until dropped") {
            Lent::Bytes(b) => b.as_ref(),
            Lent::Str(s) => s.as_bytes(),
        }
    }
}

impl Drop for LentBytes {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            self.bridge.push(Event::Release(object));
        }
    }
}

/// Bytes that read from `object`'s buffer; `object` goes back to the loop through `bridge`.
pub fn lend(object: Lent, bridge: &Arc<Bridge>) -> Bytes {
    Bytes::from_owner(LentBytes {
        object: Some(object),
        bridge: bridge.clone(),
    })
}

/// `value`'s bytes: lent when large and `bridge` is given, copied otherwise.
pub fn bytes_of(value: &Bound<'_, pyo3::types::PyBytes>, bridge: Option<&Arc<Bridge>>) -> Bytes {
    let data = value.as_bytes();
    match bridge {
        Some(bridge) if data.len() >= LEND_FROM => lend(Lent::Bytes(value.clone().into()), bridge),
        _ => Bytes::copy_from_slice(data),
    }
}

/// `value`'s UTF-8 bytes: lent when large and `bridge` is given, copied otherwise.
pub fn utf8_of(
    value: &Bound<'_, pyo3::types::PyString>,
    bridge: Option<&Arc<Bridge>>,
) -> PyResult<Bytes> {
    // `to_str` caches the UTF-8 form on the object; the lent `PyBackedStr` reads that cache.
    let text = value.to_str()?;
    match bridge {
        Some(bridge) if text.len() >= LEND_FROM => {
            Ok(lend(Lent::Str(value.clone().try_into()?), bridge))
        }
        _ => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyBytes;

    fn drain(bridge: &Bridge) -> Vec<Event> {
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        batch
    }

    #[test]
    fn small_bodies_are_copied_large_ones_lent_and_returned() {
        Python::initialize();
        let bridge = Arc::new(Bridge::new().unwrap());
        Python::attach(|py| {
            let small = PyBytes::new(py, &[1u8; 100]);
            let copied = bytes_of(&small, Some(&bridge));
            assert_ne!(copied.as_ptr(), small.as_bytes().as_ptr());
            drop(copied);
            assert!(drain(&bridge).is_empty());

            let large = PyBytes::new(py, &vec![7u8; LEND_FROM]);
            let before = large.get_refcnt();
            let lent = bytes_of(&large, Some(&bridge));
            assert_eq!(lent.as_ptr(), large.as_bytes().as_ptr(), "no copy");
            assert_eq!(large.get_refcnt(), before + 1, "held while lent");
            let sliced = lent.slice(10..20);
            drop(lent);
            assert!(drain(&bridge).is_empty(), "a slice still reads from it");
            drop(sliced);
            let events = drain(&bridge);
            assert_eq!(events.len(), 1);
            assert!(matches!(events[0], Event::Release(_)));
            drop(events);
            assert_eq!(large.get_refcnt(), before, "released under the GIL");
        });
    }

    #[test]
    fn without_a_bridge_everything_is_copied() {
        Python::initialize();
        Python::attach(|py| {
            let large = PyBytes::new(py, &vec![7u8; LEND_FROM * 2]);
            let copied = bytes_of(&large, None);
            assert_ne!(copied.as_ptr(), large.as_bytes().as_ptr());
        });
    }
}
