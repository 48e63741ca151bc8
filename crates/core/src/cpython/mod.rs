//! CPython's structures: where they are ([`layout`]), how to read them
//! ([`memory`]), and how to follow them ([`walk`], [`lines`]). Nothing here
//! knows about signals or output formats.

pub mod debug_offsets;
pub mod layout;
pub mod lines;
pub mod memory;
pub mod walk;
