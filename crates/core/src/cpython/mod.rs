//! CPython's structures: where they are ([`layout`], [`debug_offsets`]) and
//! how to follow them ([`walk`], [`lines`]), through a [`crate::memory::Memory`]. Nothing here
//! knows about signals or output formats.

pub mod debug_offsets;
pub mod layout;
pub mod lines;
pub mod walk;
