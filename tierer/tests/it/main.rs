//! Integration tests of the tierer against real tables (one test binary per crate).

mod tiering;
