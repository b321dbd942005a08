import CouponLog
import Foundation
import Glibc

/// A fresh private directory under the system's temporary directory, removed with everything in
/// it when the value goes away.
final class TestDirectory {
  let path: String

  init() throws {
    var template = Array((NSTemporaryDirectory() + "couponlog-test-XXXXXX").utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let created else {
      throw SystemCallError(syscall: "mkdtemp", errno: errno, path: NSTemporaryDirectory())
    }
    path = String(cString: created)
  }

  deinit {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// The path of `name` in the directory.
  func file(_ name: String) -> String {
    path + "/" + name
  }

  /// The paths of the segment files in the directory, in log order.
  func segmentPaths() throws -> [String] {
    try RealFileSystem().contentsOfDirectory(path)
      .filter { SegmentFile.firstSequence(fromName: $0) != nil }
      .map { file($0) }
  }
}

/// SplitMix64: a tiny seeded generator, so every randomized test is reproducible from its seed.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) {
    state = seed
  }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func bytes(_ count: Int) -> [UInt8] {
    var result = [UInt8]()
    result.reserveCapacity(count + 8)
    while result.count < count {
      withUnsafeBytes(of: next()) { result.append(contentsOf: $0) }
    }
    return Array(result.prefix(count))
  }
}
