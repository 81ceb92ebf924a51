//! The `multinet` binary is linked position-dependent: a runtime starts it once per CNI call, and
//! a position-independent executable of this size spends about half a millisecond of every start
//! applying 70 000 relative relocations.
fn main() {
    println!("cargo::rustc-link-arg-bins=-no-pie");
}
