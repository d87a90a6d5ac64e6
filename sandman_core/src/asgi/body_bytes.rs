//! An app's body as `Bytes`: copied when small, borrowed from the Python object when large.
//!
//! A Python `bytes` is immutable, so while we hold a reference the IO thread may write
//! straight from its buffer without the GIL. For a 64 KiB chunk that saves a `memmove`
//! into cold memory and lets the kernel copy from memory the app just touched: the 1 MiB
//! stream and the 64 KiB echo both spend less CPU per response.
//!
//! The reference must be dropped under the GIL. The IO thread finishes with the buffer,
//! so [`BorrowedBody`] hands its object back through the bridge ([`LoopEvent::Release`])
//! and the loop thread drops it in its next drain. PyO3's deferred-decref pool would
//! also free it, but only at whatever call into Rust happens next; the event makes the
//! release a property of this module rather than of the traffic that follows.
//!
//! Small bodies are still copied: below [`BORROW_FROM`] the copy is cheaper than the
//! bookkeeping, and copying keeps their lifetime exactly the app's.

use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};

use crate::asgi::events::{LoopBridge, LoopEvent, Released};

/// Bodies at least this long are borrowed, shorter ones copied.
pub const BORROW_FROM: usize = 16 * 1024;

/// A Python object whose buffer the IO thread reads from.
enum Source {
    /// A `bytes` object.
    Bytes(PyBackedBytes),
    /// A `str`'s UTF-8 form (kept alive by the `str` itself).
    Str(PyBackedStr),
}

/// The owner behind a borrowed [`Bytes`]: returns the object to the loop when dropped.
struct BorrowedBody {
    object: Option<Source>,
    bridge: Arc<LoopBridge>,
}

impl AsRef<[u8]> for BorrowedBody {
    fn as_ref(&self) -> &[u8] {
        match self.object.as_ref().expect("present until dropped") {
            Source::Bytes(b) => b.as_ref(),
            Source::Str(s) => s.as_bytes(),
        }
    }
}

impl Drop for BorrowedBody {
    fn drop(&mut self) {
        let released = match self.object.take() {
            Some(Source::Bytes(b)) => Released::Bytes(b),
            Some(Source::Str(s)) => Released::Str(s),
            None => return,
        };
        self.bridge.push(LoopEvent::Release(released));
    }
}

/// Bytes that read from `object`'s buffer; `object` goes back to the loop through `bridge`.
fn borrow(object: Source, bridge: &Arc<LoopBridge>) -> Bytes {
    Bytes::from_owner(BorrowedBody {
        object: Some(object),
        bridge: bridge.clone(),
    })
}

/// `value`'s bytes: borrowed when large and `bridge` is given, copied otherwise.
pub fn bytes_of(
    value: &Bound<'_, pyo3::types::PyBytes>,
    bridge: Option<&Arc<LoopBridge>>,
) -> Bytes {
    let data = value.as_bytes();
    match bridge {
        Some(bridge) if data.len() >= BORROW_FROM => {
            let object: PyBackedBytes = value.clone().into();
            borrow(Source::Bytes(object), bridge)
        }
        _ => Bytes::copy_from_slice(data),
    }
}

/// `value`'s UTF-8 bytes: borrowed when large and `bridge` is given, copied otherwise.
pub fn utf8_of(
    value: &Bound<'_, pyo3::types::PyString>,
    bridge: Option<&Arc<LoopBridge>>,
) -> PyResult<Bytes> {
    // `to_str` caches the UTF-8 form on the object; the borrowed `PyBackedStr` reads that
    // cache.
    let text = value.to_str()?;
    match bridge {
        Some(bridge) if text.len() >= BORROW_FROM => {
            let object: PyBackedStr = value.clone().try_into()?;
            Ok(borrow(Source::Str(object), bridge))
        }
        _ => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyBytes;

    fn drain(bridge: &LoopBridge) -> Vec<LoopEvent> {
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        batch
    }

    #[test]
    fn small_bodies_are_copied_large_ones_borrowed_and_returned() {
        Python::initialize();
        let bridge: Arc<LoopBridge> = Arc::new(LoopBridge::new().unwrap());
        Python::attach(|py| {
            let small = PyBytes::new(py, &[1u8; 100]);
            let copied = bytes_of(&small, Some(&bridge));
            assert_ne!(copied.as_ptr(), small.as_bytes().as_ptr());
            drop(copied);
            assert!(drain(&bridge).is_empty());

            let large = PyBytes::new(py, &vec![7u8; BORROW_FROM]);
            let before = large.get_refcnt();
            let borrowed = bytes_of(&large, Some(&bridge));
            assert_eq!(borrowed.as_ptr(), large.as_bytes().as_ptr(), "no copy");
            assert_eq!(large.get_refcnt(), before + 1, "held while borrowed");
            let sliced = borrowed.slice(10..20);
            drop(borrowed);
            assert!(drain(&bridge).is_empty(), "a slice still reads from it");
            drop(sliced);
            let events = drain(&bridge);
            assert_eq!(events.len(), 1);
            assert!(matches!(events[0], LoopEvent::Release(_)));
            drop(events);
            assert_eq!(large.get_refcnt(), before, "released under the GIL");
        });
    }

    #[test]
    fn without_a_bridge_everything_is_copied() {
        Python::initialize();
        Python::attach(|py| {
            let large = PyBytes::new(py, &vec![7u8; BORROW_FROM * 2]);
            let copied = bytes_of(&large, None);
            assert_ne!(copied.as_ptr(), large.as_bytes().as_ptr());
        });
    }
}
