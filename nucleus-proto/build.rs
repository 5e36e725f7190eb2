//! Compiles `proto/nucleus.proto` into Rust with protox (a pure-Rust
//! protobuf compiler: no protoc binary on the build machine) and prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/nucleus.proto");
    let descriptors = protox::compile(["nucleus.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
