// Writing a target's seed inputs (`Fuzz/run.sh seeds TARGET`): the libFuzzer entry point of a
// target with seeds checks `FUZZ_WRITE_SEEDS` before fuzzing, writes its seeds there and exits.

import Foundation

enum SeedWriter {
  /// If `FUZZ_WRITE_SEEDS` names a directory, writes `seeds()` into it as `seed-NN` and exits.
  static func writeIfAsked(_ seeds: () -> [[UInt8]]) {
    guard let directory = ProcessInfo.processInfo.environment["FUZZ_WRITE_SEEDS"] else { return }
    try! FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true)
    for (index, seed) in seeds().enumerated() {
      let name = "seed-" + (index < 10 ? "0" : "") + String(index)
      try! Data(seed).write(to: URL(fileURLWithPath: directory + "/" + name))
    }
    print("wrote \(seeds().count) seeds to \(directory)")
    exit(0)
  }
}
