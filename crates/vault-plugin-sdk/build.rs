//! Compiles proto/ into Rust with protox (a pure-Rust protobuf compiler), so
//! building the plugin never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/backend.proto",
        "proto/logical.proto",
        "proto/plugin.proto",
        "proto/multiplexing.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Services the plugin only calls (Storage, SystemView) or only partly
        // serves get Unimplemented defaults instead of hand-written stubs.
        .generate_default_stubs(true)
        // Small first message buffers: see runtime::codec.
        .codec_path("crate::runtime::codec::SmallBufferCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
