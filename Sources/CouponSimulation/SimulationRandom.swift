// A small seeded random number generator for simulations.
//
// Everything a simulation decides (which writes survive a crash, where a write tears, which
// operation fails, what the workload does) is drawn from one of these, so a seed reproduces the
// decisions exactly. xoshiro256** (Blackman and Vigna), seeded through SplitMix64 as its authors
// recommend: fast, small, statistically sound, and defined by a dozen lines that will not change
// under us. Not the standard library's generator, whose algorithm is not specified and may change
// between toolchains, and not Foundation's, which cannot be seeded. Bounded integers use Lemire's
// multiply-and-reject method, written out here rather than `Int.random(in:using:)` for the same
// reason: its exact draws are not part of the standard library's contract.

/// A seeded, deterministic random number generator (xoshiro256** seeded by SplitMix64).
///
/// The same seed gives the same sequence on every platform and toolchain. Not cryptographically
/// secure: for simulations and tests only.
///
/// ```swift
/// var random = SimulationRandom(seed: 1234)
/// let operation = random.int(in: 1...100)
/// if random.chance(0.25) { ... }
/// var workerRandom = random.split()   // an independent stream for another task
/// ```
public struct SimulationRandom: RandomNumberGenerator, Sendable, Hashable {
  private var s0: UInt64
  private var s1: UInt64
  private var s2: UInt64
  private var s3: UInt64

  /// The seed this generator was created with (kept for messages; ``split()`` derives new ones).
  public let seed: UInt64

  /// A generator whose sequence is fully determined by `seed`.
  public init(seed: UInt64) {
    self.seed = seed
    var mix = SplitMix64(state: seed)
    s0 = mix.next()
    s1 = mix.next()
    s2 = mix.next()
    s3 = mix.next()
    // xoshiro must not start from all zeros; SplitMix64 never yields four zeros in a row, but
    // the check costs nothing and documents the requirement.
    precondition(s0 | s1 | s2 | s3 != 0, "xoshiro256** state must not be all zeros")
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    let result = rotateLeft(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotateLeft(s3, 45)
    return result
  }

  /// A uniformly distributed integer in `0 ..< bound`. Traps if `bound` is not positive.
  public mutating func below(_ bound: Int) -> Int {
    precondition(bound > 0, "below(\(bound)): the bound must be positive")
    // Lemire, "Fast Random Integer Generation in an Interval" (2019).
    let range = UInt64(bound)
    var product = next().multipliedFullWidth(by: range)
    if product.low < range {
      let threshold = (0 &- range) % range
      while product.low < threshold {
        product = next().multipliedFullWidth(by: range)
      }
    }
    return Int(product.high)
  }

  /// A uniformly distributed integer in `range`. Traps on an empty range.
  public mutating func int(in range: ClosedRange<Int>) -> Int {
    precondition(range.upperBound < Int.max, "int(in:) supports ranges below Int.max")
    return range.lowerBound + below(range.upperBound - range.lowerBound + 1)
  }

  /// `true` with probability `probability` (0 gives never, 1 always).
  public mutating func chance(_ probability: Double) -> Bool {
    if probability <= 0 { return false }
    if probability >= 1 { return true }
    // 53 random bits give every representable probability its exact weight.
    return Double(next() >> 11) * 0x1p-53 < probability
  }

  /// A uniformly chosen element of `collection`, or `nil` if it is empty.
  public mutating func element<C: Collection>(of collection: C) -> C.Element? {
    guard !collection.isEmpty else { return nil }
    return collection[collection.index(collection.startIndex, offsetBy: below(collection.count))]
  }

  /// A new generator with its own seed drawn from this one: an independent stream for another
  /// task or another part of the simulation, so that adding draws in one part does not shift the
  /// draws of the others.
  public mutating func split() -> SimulationRandom {
    SimulationRandom(seed: next())
  }

  private func rotateLeft(_ value: UInt64, _ count: UInt64) -> UInt64 {
    (value << count) | (value >> (64 - count))
  }
}

/// SplitMix64 (Steele, Lea and Flood), used only to expand a seed into xoshiro's state.
private struct SplitMix64 {
  var state: UInt64

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
