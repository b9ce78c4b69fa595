//! The bindings are generated from ../wit by a macro, which cargo does not know reads it: tell it,
//! so that a changed WIT builds the plugins again.

fn main() {
    println!("cargo:rerun-if-changed=../wit");
}
