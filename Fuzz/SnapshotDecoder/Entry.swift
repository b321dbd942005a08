// libFuzzer entry points of the snapshot-decoder target.

/// Called by libFuzzer once, before fuzzing: writes the seeds when `FUZZ_WRITE_SEEDS` is set.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
  _ argc: UnsafeMutablePointer<Int32>?,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> Int32 {
  SeedWriter.writeIfAsked(SnapshotDecoderFuzzer.seeds)
  return 0
}

/// Called by libFuzzer for every input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  FuzzEntry.run(data, size, SnapshotDecoderFuzzer.run)
}
