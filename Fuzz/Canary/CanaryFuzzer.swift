// canary: a planted bug the fuzzer must find within seconds.
//
// Four nested byte comparisons and no checksum in the way, the shape libFuzzer's comparison
// tracing solves almost at once; behind them, an out-of-bounds array index, a real Swift trap.
// If `Fuzz/run.sh canary` ever stops finding it, the fuzz setup is broken (no coverage
// instrumentation, a wrong entry point, a runner that ignores crashes), and every other target's
// silence means nothing: run.sh and ci.sh fail when the canary survives.

enum CanaryFuzzer {
  /// The magic that reaches the planted bug: "FUZZ".
  static let magic: [UInt8] = [0x46, 0x55, 0x5A, 0x5A]

  static func run(_ data: [UInt8]) throws {
    guard data.count > magic.count else { return }
    if data[0] == magic[0] {
      if data[1] == magic[1] {
        if data[2] == magic[2] {
          if data[3] == magic[3] {
            let table = [UInt8](repeating: 0, count: 4)
            // The planted bug: index 4 ... 259 into a 4-element array traps.
            FuzzLog.line("canary reached with index \(4 + Int(data[4]))")
            _ = table[4 + Int(data[4])]
          }
        }
      }
    }
  }
}
