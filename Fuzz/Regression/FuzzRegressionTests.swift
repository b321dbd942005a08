// Every input a fuzzer ever failed on, and every seed, replayed through the fuzz targets' own
// code (the same functions the libFuzzer entry points call), so that `swift test` catches a
// regression without libFuzzer. The files are found next to this source file (#filePath), so the
// tests work in any clean clone.

import Foundation
import Testing

@Suite("Fuzz regressions")
struct FuzzRegressionTests {
  /// The `Fuzz` folder of the checkout this file is in.
  static let fuzzFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().path

  /// The files of `Fuzz/FailCases/target` and `Fuzz/Corpus/target`, as paths relative to
  /// `Fuzz` (readable test-case names).
  static func inputs(_ target: String) -> [String] {
    ["FailCases", "Corpus"].flatMap { folder -> [String] in
      let directory = "\(folder)/\(target)"
      let names =
        (try? FileManager.default.contentsOfDirectory(atPath: fuzzFolder + "/" + directory)) ?? []
      return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted()
        .map { "\(directory)/\($0)" }
    }
  }

  static func bytes(_ input: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: fuzzFolder + "/" + input)))
  }

  @Test(arguments: inputs("frame-decoder"))
  func frameDecoderInputReplaysWithoutFinding(_ input: String) throws {
    try FrameDecoderFuzzer.run(try Self.bytes(input))
  }

  @Test(arguments: inputs("event-decoder"))
  func eventDecoderInputReplaysWithoutFinding(_ input: String) throws {
    try EventDecoderFuzzer.run(try Self.bytes(input))
  }

  @Test(arguments: inputs("snapshot-decoder"))
  func snapshotDecoderInputReplaysWithoutFinding(_ input: String) throws {
    try SnapshotDecoderFuzzer.run(try Self.bytes(input))
  }

  @Test func snapshotDecoderSeedsLoadCleanly() throws {
    let seeds = SnapshotDecoderFuzzer.seeds()
    #expect(seeds.count == 3)
    for seed in seeds { try SnapshotDecoderFuzzer.run(seed) }
  }

  @Test(arguments: inputs("api-sequence"))
  func apiSequenceInputReplaysWithoutFinding(_ input: String) async throws {
    try await APISequenceFuzzer.run(try Self.bytes(input))
  }

  /// The canary's planted bug is reachable only through its magic: anything else runs clean.
  @Test func canaryRunsCleanWithoutItsMagic() throws {
    try CanaryFuzzer.run(Array("FUZ".utf8) + [0x5B, 0])
    try CanaryFuzzer.run(CanaryFuzzer.magic)
  }
}
