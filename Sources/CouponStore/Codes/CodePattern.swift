import Foundation

/// How generated coupon codes look: `prefix` + `length` symbols drawn uniformly from `alphabet`,
/// split into groups of `groupSize` joined by `separator`.
///
/// ```swift
/// CodePattern(alphabet: .alphanumeric, length: 8, prefix: "SPRING-", groupSize: 4)  // SPRING-K7QX-2M9D
/// CodePattern.hangulDigits                                                       // 가1나2다3라4마5
/// ```
///
/// Codes are bearer secrets: a campaign whose pattern has fewer than 1,000 × stock combinations
/// is rejected, so that guessing a valid code stays at worse than one-in-a-thousand odds.
public struct CodePattern: Sendable, Hashable {
  /// The symbols codes are made of (2–256 distinct symbols, no control characters, not the
  /// separator).
  public var alphabet: [Character]
  /// The number of random symbols in a code (1–64).
  public var length: Int
  /// A fixed text in front of every code (0–32 bytes, no control characters).
  public var prefix: String
  /// Split the random symbols into groups of this size; `nil` for no grouping.
  public var groupSize: Int?
  /// What joins groups.
  public var separator: Character

  /// Upper-case letters and digits without the look-alikes 0/O, 1/I/L.
  public static let unambiguousSymbols: [Character] = Array("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
  /// The 14 Hangul syllables of the existing service's codes followed by the ten digits.
  public static let hangulDigitSymbols: [Character] = Array("가나다라마바사아자차카타파하0123456789")

  /// 10 unambiguous upper-case letters and digits, grouped by 5: `K7QX2-M9DHT`.
  public static let alphanumeric = CodePattern(
    alphabet: unambiguousSymbols, length: 10, groupSize: 5)
  /// The preset that mirrors an existing service: 10 characters, each a Hangul syllable from
  /// 가나다라마바사아자차카타파하 or a digit (`가1나2다3라4마5`).
  public static let hangulDigits = CodePattern(alphabet: hangulDigitSymbols, length: 10)

  /// Describes a pattern.
  public init(
    alphabet: [Character], length: Int, prefix: String = "", groupSize: Int? = nil,
    separator: Character = "-"
  ) {
    self.alphabet = alphabet
    self.length = length
    self.prefix = prefix
    self.groupSize = groupSize
    self.separator = separator
  }

  /// The number of distinct codes the pattern can produce (`alphabet.count ^ length`), as a
  /// floating-point number because it easily exceeds 64 bits.
  public var combinations: Double {
    pow(Double(alphabet.count), Double(length))
  }

  /// Limits of a pattern.
  static let lengthMax = 64
  static let alphabetMax = 256
  static let prefixBytesMax = 32
  /// How many times more combinations than stock a pattern must have.
  static let combinationsPerCouponMin = 1_000.0

  /// Checks the pattern's own shape (not its size relative to a stock).
  func validate(field: String) throws(CouponStoreError) {
    guard (1...Self.lengthMax).contains(length) else {
      throw .invalid("\(field).length", "code length must be 1–\(Self.lengthMax), got \(length)")
    }
    guard (2...Self.alphabetMax).contains(alphabet.count) else {
      throw .invalid(
        "\(field).alphabet",
        "alphabet must have 2–\(Self.alphabetMax) symbols, got \(alphabet.count)")
    }
    guard Set(alphabet).count == alphabet.count else {
      throw .invalid("\(field).alphabet", "alphabet symbols must be distinct")
    }
    for symbol in alphabet where symbol == separator || symbol.isControlLike {
      throw .invalid(
        "\(field).alphabet",
        "alphabet must not contain control characters or the separator \"\(separator)\"")
    }
    guard prefix.utf8.count <= Self.prefixBytesMax, !prefix.contains(where: \.isControlLike) else {
      throw .invalid(
        "\(field).prefix",
        "prefix must be at most \(Self.prefixBytesMax) bytes without control characters")
    }
    if let groupSize, !(1...length).contains(groupSize) {
      throw .invalid("\(field).groupSize", "group size must be 1–\(length), got \(groupSize)")
    }
    if separator.isControlLike {
      throw .invalid("\(field).separator", "separator must not be a control character")
    }
    guard let bytes = maxCodeBytes, bytes <= CodeRules.codeBytesMax else {
      throw .invalid(
        field, "generated codes would be longer than \(CodeRules.codeBytesMax) bytes")
    }
  }

  /// Checks that the pattern is large enough for `stock` codes.
  func validate(field: String, forStock stock: Int) throws(CouponStoreError) {
    try validate(field: field)
    let needed = Double(stock) * Self.combinationsPerCouponMin
    guard combinations >= needed else {
      throw .invalid(
        field,
        "pattern has \(combinations) combinations, fewer than 1,000 × stock (\(needed)): codes "
          + "would be guessable; use a longer code or a larger alphabet")
    }
  }

  private var maxCodeBytes: Int? {
    let symbolBytes = alphabet.map { String($0).utf8.count }.max() ?? 0
    let groups = groupSize.map { (length + $0 - 1) / $0 } ?? 1
    let separatorBytes = String(separator).utf8.count * (groups - 1)
    return prefix.utf8.count + symbolBytes * length + separatorBytes
  }
}

/// Rules every code obeys, generated or uploaded.
enum CodeRules {
  /// Uploaded codes: 1–64 characters.
  static let codeCharactersMax = 64
  /// Upper bound on a code's UTF-8 bytes (64 characters of up to 4 bytes each).
  static let codeBytesMax = 256

  /// Why a code cannot name any coupon, or `nil` if it could: the check for codes that are
  /// looked up (`coupon(code:)`, `claim(code:)`). Not the 64-character rule of uploads: a
  /// generated code can be longer (64 symbols plus a prefix and separators), and the store must
  /// find every code it issued.
  static func lookupProblem(_ code: String) -> AddCodesResult.Reason? {
    if code.isEmpty { return .empty }
    if code.utf8.count > codeBytesMax { return .tooLong }
    if Validate.containsControlCharacter(code) { return .controlCharacter }
    return nil
  }

  /// Why an uploaded code is refused, or `nil` if its shape is acceptable.
  static func shapeProblem(_ code: String) -> AddCodesResult.Reason? {
    if code.isEmpty { return .empty }
    // Fast path for printable ASCII (nearly every real code): one byte per character, and no
    // control character. Uploads check a million codes this way in a few milliseconds.
    let printable = code.utf8.withContiguousStorageIfAvailable { bytes in
      bytes.allSatisfy { (0x20..<0x7F).contains($0) }
    }
    if printable == true { return code.utf8.count > codeCharactersMax ? .tooLong : nil }
    if code.count > codeCharactersMax || code.utf8.count > codeBytesMax { return .tooLong }
    if Validate.containsControlCharacter(code) { return .controlCharacter }
    return nil
  }
}

extension Character {
  /// Control characters (and anything containing one) are refused in ids, names and codes.
  var isControlLike: Bool {
    Validate.containsControlCharacter(String(self))
  }
}

/// A code generator compiled from a pattern: each symbol pre-encoded as UTF-8, so generating a
/// code is a few table lookups and byte copies on the writer thread.
struct CodeGenerator {
  /// Every symbol's UTF-8 bytes back to back; symbol `i` is `symbolBytes[symbolStarts[i] ..<
  /// symbolStarts[i + 1]]`. Flat arrays and not `[[UInt8]]`, so generating a code touches no
  /// reference counts.
  private let symbolBytes: [UInt8]
  private let symbolStarts: [Int]
  private let prefix: [UInt8]
  private let separator: [UInt8]
  private let groupSize: Int
  private let length: Int
  /// Whether every symbol is one byte (ASCII alphabets: the common case), so symbol `i` is
  /// `symbolBytes[i]`.
  private let singleByteSymbols: Bool

  init(_ pattern: CodePattern) {
    var bytes: [UInt8] = []
    var starts = [0]
    for symbol in pattern.alphabet {
      bytes.append(contentsOf: String(symbol).utf8)
      starts.append(bytes.count)
    }
    symbolBytes = bytes
    symbolStarts = starts
    prefix = Array(pattern.prefix.utf8)
    separator = Array(String(pattern.separator).utf8)
    groupSize = pattern.groupSize ?? Int.max
    length = pattern.length
    singleByteSymbols = bytes.count == starts.count - 1
  }

  /// Writes a fresh random code into `bytes` (cleared first).
  func generate(into bytes: inout [UInt8], random: inout SecureRandom) {
    bytes.removeAll(keepingCapacity: true)
    generate(appendingTo: &bytes, random: &random)
  }

  /// Appends a fresh random code to `bytes`.
  func generate(appendingTo bytes: inout [UInt8], random: inout SecureRandom) {
    bytes.append(contentsOf: prefix)
    let symbolCount = symbolStarts.count - 1
    for position in 0..<length {
      if position > 0, position % groupSize == 0 { bytes.append(contentsOf: separator) }
      let symbol = random.uniform(below: symbolCount)
      if singleByteSymbols {
        bytes.append(symbolBytes[symbol])
        continue
      }
      for index in symbolStarts[symbol]..<symbolStarts[symbol + 1] {
        bytes.append(symbolBytes[index])
      }
    }
  }
}
