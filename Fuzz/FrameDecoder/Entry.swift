// libFuzzer entry point of the frame-decoder target (not part of the regression tests, which
// call FrameDecoderFuzzer.run directly).

/// Called by libFuzzer for every input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  FuzzEntry.run(data, size, FrameDecoderFuzzer.run)
}
