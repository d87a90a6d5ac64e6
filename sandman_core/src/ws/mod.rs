//! WebSockets (RFC 6455, permessage-deflate per RFC 7692) in the core.
//!
//! Framing, masking, fragmentation, UTF-8 checks, automatic pongs, the close handshake and
//! permessage-deflate come from `yawc` (a maintained fork of fastwebsockets that adds
//! RFC 7692 and passes Autobahn): tungstenite refuses RSV1 frames and fastwebsockets has
//! no compression, and hand-written framing is what we do not want. This module owns only
//! what is ours: when to upgrade (`handshake`) and moving messages between the socket and
//! the ASGI state with back-pressure, pings and shutdown (`connection`), and giving back
//! the buffers of an idle socket (`park`, with `frames` following the client's framing).

pub mod connection;
pub mod frames;
pub mod handshake;
pub mod park;
