#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A cryptographically secure random source for codes and ids: bytes from the kernel's CSPRNG
/// (`arc4random_buf`, which draws on `getrandom`), fetched 4 KiB at a time.
///
/// Buffering and not one call per code, because a flash sale generates hundreds of
/// thousands of codes a second on the writer thread and a system call each would cost more than
/// the rest of the claim. The bytes are the kernel's, unmodified, so they stay unpredictable.
/// Owned by the writer thread (a value type, never shared).
struct SecureRandom {
  private var buffer = [UInt8](repeating: 0, count: 4096)
  private var position = 4096

  init() {}

  mutating func nextByte() -> UInt8 {
    if position == buffer.count { refill() }
    defer { position += 1 }
    return buffer[position]
  }

  mutating func nextUInt64() -> UInt64 {
    var value: UInt64 = 0
    for _ in 0..<8 { value = value << 8 | UInt64(nextByte()) }
    return value
  }

  /// A uniform integer in `0..<bound`, without modulo bias (rejection sampling).
  mutating func uniform(below bound: Int) -> Int {
    precondition(bound > 0, "uniform(below:) needs a positive bound")
    if bound <= 256 {
      let limit = 256 - 256 % bound
      while true {
        let byte = Int(nextByte())
        if byte < limit { return byte % bound }
      }
    }
    let bound64 = UInt64(bound)
    let limit = UInt64.max - UInt64.max % bound64
    while true {
      let value = nextUInt64()
      if value < limit { return Int(value % bound64) }
    }
  }

  private mutating func refill() {
    // arc4random_buf: the C library's CSPRNG over the kernel's getrandom (glibc ≥ 2.36, every
    // Darwin); it cannot fail, so there is no weak fallback to worry about.
    buffer.withUnsafeMutableBytes { raw in
      arc4random_buf(raw.baseAddress!, raw.count)
    }
    position = 0
  }
}
