import Foundation
import Synchronization
import Testing

@testable import CouponStore

/// A fresh, empty temporary directory path (not created), removed by `cleanup`.
func temporaryStorePath(_ name: String = #function) -> String {
  let safe = name.filter { $0.isLetter || $0.isNumber }
  let parent = NSTemporaryDirectory() + "couponstore-tests"
  try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
  return parent + "/\(safe)-\(UUID().uuidString.prefix(8))"
}

/// Opens a store in a fresh temporary directory, runs `body`, closes it and removes the
/// directory.
func withTemporaryStore<R>(
  _ name: String = #function, options: CouponStore.Options = CouponStore.Options(),
  _ body: (CouponStore, String) async throws -> R
) async throws -> R {
  let path = temporaryStorePath(name)
  defer { try? FileManager.default.removeItem(atPath: path) }
  let store = try await CouponStore.open(directory: path, options: options)
  do {
    let result = try await body(store, path)
    try await store.close()
    return result
  } catch {
    try? await store.close()
    throw error
  }
}

/// A clock tests can move: reads are atomic, so the writer thread sees moves at once.
final class TestClock: Sendable {
  private let millis: Mutex<Int64>
  init(_ date: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
    millis = Mutex(date.millis)
  }
  var now: Date { Date(millis: millis.withLock { $0 }) }
  func advance(seconds: Double) { millis.withLock { $0 += Int64(seconds * 1000) } }
  var function: @Sendable () -> Date { { [self] in now } }
}

/// Byte surgery on files, for log tests.
enum FileSurgery {
  static func flipBit(_ path: String, at offset: Int, bit: UInt8 = 0) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    data[offset] ^= 1 << bit
    try data.write(to: URL(fileURLWithPath: path))
  }

  static func truncate(_ path: String, by count: Int) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    try data.prefix(data.count - count).write(to: URL(fileURLWithPath: path))
  }

  static func append(_ path: String, _ bytes: [UInt8]) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
  }

  static func size(_ path: String) throws -> Int {
    try Data(contentsOf: URL(fileURLWithPath: path)).count
  }

  /// Log segment paths of a store directory, oldest first.
  static func segments(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory)
      .filter { $0.hasPrefix("log-") && $0.hasSuffix(".seg") }.sorted()
      .map { directory + "/" + $0 }
  }
}
