// Reading fuzz parameters out of the input bytes, and reporting findings.
//
// Every parameter of a run (sizes, flags, strings, operations) is taken from the input, so that
// the input alone reproduces the run: a crash file from libFuzzer, replayed by the regression
// test, does exactly what the fuzzer did. When the input runs out every read returns zero, so any
// prefix of an input is itself a valid, shorter run (which is what lets libFuzzer minimise).

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A broken invariant or a disagreement with the reference model: the fuzzer's finding.
///
/// The libFuzzer entry points turn it into a trap (so libFuzzer saves the input); the regression
/// tests report it as a failed test.
struct FuzzFinding: Error, CustomStringConvertible {
  var message: String
  var description: String { "fuzz finding: \(message)" }
}

/// Throws a ``FuzzFinding`` with `message` unless `condition` holds.
func fuzzCheck(
  _ condition: Bool, _ message: @autoclosure () -> String
) throws(FuzzFinding) {
  if !condition { throw FuzzFinding(message: message()) }
}

/// One-line logging of a run's parameters, only with `FUZZ_VERBOSE=1` (printing on every run
/// would cost more than the run).
enum FuzzLog {
  /// Whether `FUZZ_VERBOSE` is set to something other than `0`.
  static let enabled: Bool = {
    guard let value = getenv("FUZZ_VERBOSE") else { return false }
    return String(cString: value) != "0"
  }()

  /// Prints `line()` to standard error (unbuffered, so the lines before a crash are not lost)
  /// when logging is enabled.
  static func line(_ line: @autoclosure () -> String) {
    guard enabled else { return }
    let text = line() + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
  }
}

/// A cursor over the fuzz input that hands out parameters.
struct FuzzInput {
  /// The whole input.
  let bytes: [UInt8]
  /// How many bytes were consumed.
  private(set) var position = 0

  /// Reads parameters from `bytes`.
  init(_ bytes: [UInt8]) {
    self.bytes = bytes
  }

  /// Whether every byte was consumed.
  var isExhausted: Bool { position >= bytes.count }

  /// Bytes not consumed yet.
  var remainingCount: Int { max(0, bytes.count - position) }

  /// The next byte, or 0 once the input is exhausted.
  mutating func byte() -> UInt8 {
    guard position < bytes.count else { return 0 }
    defer { position += 1 }
    return bytes[position]
  }

  /// A flag from the low bit of the next byte.
  mutating func bool() -> Bool { byte() & 1 == 1 }

  /// A little-endian integer of `byteCount` bytes (1–8).
  mutating func unsigned(byteCount: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in 0..<byteCount { value |= UInt64(byte()) << (8 * UInt64(index)) }
    return value
  }

  /// A full 64-bit value.
  mutating func uint64() -> UInt64 { unsigned(byteCount: 8) }

  /// A value in `range`, reading only as many bytes as the range needs.
  mutating func int(in range: ClosedRange<Int>) -> Int {
    let span = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound))
    let byteCount = span == 0 ? 0 : (64 - span.leadingZeroBitCount + 7) / 8
    let raw = unsigned(byteCount: byteCount)
    let offset = span == UInt64.max ? raw : raw % (span + 1)
    return range.lowerBound &+ Int(truncatingIfNeeded: offset)
  }

  /// One of `choices`.
  mutating func pick<T>(_ choices: [T]) -> T {
    choices[int(in: 0...choices.count - 1)]
  }

  /// The next `count` bytes (fewer if the input runs out).
  mutating func take(_ count: Int) -> [UInt8] {
    let available = min(max(0, count), remainingCount)
    defer { position += available }
    return Array(bytes[position..<position + available])
  }

  /// Every byte not consumed yet.
  mutating func rest() -> [UInt8] { take(remainingCount) }
}
