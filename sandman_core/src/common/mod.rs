//! Small pieces shared by every layer: limits, the cached `date` header, canned responses.

pub mod access;
pub mod date;
pub mod limits;
