// Hostile arguments for the api-sequence target: the ids, users, codes and specs a server
// embedding the store might pass on from the internet.
//
// Strings are drawn from small vocabularies most of the time (so that the same user, campaign or
// request id comes back and limits, retries and conflicts are reached) and otherwise built to
// hurt: empty, at and just past every byte limit in one-, two-, three- and four-byte UTF-8,
// invalid UTF-8 (repaired to U+FFFD, as a server decoding a request would), C0 and C1 control
// characters, Hangul in composed and decomposed (canonically equivalent, byte-different) forms,
// emoji with skin tones and zero-width joiners, combining marks, and look-alike whitespace.

import CouponStore
import Foundation

enum Hostile {
  static let users = ["u1", "u2", "u3", "가", "\u{1100}\u{1161}", "👩‍👩‍👧", "é", "e\u{301}"]
  static let campaignIDs = ["c1", "c2", "가나", "\u{1100}\u{1161}\u{1102}\u{1161}", "é", "e\u{301}"]
  static let requestIDs = ["r1", "r2", "r3", "é", "e\u{301}"]
  static let controls = [
    "\u{0}", "\t", "\n", "\r", "\u{1B}", "\u{7F}", "\u{80}", "\u{85}", "\u{9F}",
  ]
  static let lookAlikes = ["\u{A0}", "\u{200B}", "\u{FEFF}", "\u{2028}", "\u{3000}", " ", "\u{AD}"]
  static let emoji = ["👍", "👍🏽", "👩‍👩‍👧", "🇰🇷", "🏳️‍🌈", "😀", "\u{1F1F0}"]
  /// One unit of each UTF-8 width, and a two-scalar grapheme.
  static let units = ["a", "é", "가", "👍", "e\u{301}"]
  /// Byte lengths around the limits (64 for ids and codes, 128 for users and request ids, 256
  /// for names and code bytes).
  static let lengths = [1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000]

  /// A string: a vocabulary word most of the time, something hostile otherwise.
  static func string(_ input: inout FuzzInput, vocabulary: [String], depth: Int = 0) -> String {
    let kind = input.byte()
    switch kind % 16 {
    case 0: return ""
    case 1:
      return String(decoding: input.take(input.int(in: 0...12)), as: UTF8.self)
    case 2:
      return input.pick(vocabulary) + input.pick(controls)
    case 3:
      var text = ""
      for _ in 0..<input.int(in: 1...4) {
        let syllable = 0xAC00 + input.int(in: 0...11171)
        text.unicodeScalars.append(Unicode.Scalar(UInt32(syllable))!)
      }
      return input.bool() ? text.decomposedStringWithCanonicalMapping : text
    case 4:
      return String(repeating: input.pick(emoji), count: input.int(in: 1...3))
    case 5:
      // Repeat a unit up to a byte length near a limit (the last unit may overshoot it).
      let unit = input.pick(units)
      let length = input.pick(lengths)
      return String(repeating: unit, count: max(1, length / unit.utf8.count))
    case 6:
      return "a" + String(repeating: "\u{301}", count: input.int(in: 1...70))
    case 7:
      return input.pick(lookAlikes) + input.pick(vocabulary) + input.pick(lookAlikes)
    case 8 where depth == 0:
      return string(&input, vocabulary: vocabulary, depth: 1)
        + string(&input, vocabulary: vocabulary, depth: 1)
    default:
      return input.pick(vocabulary)
    }
  }

  /// An optional string: `nil` often.
  static func optional(_ input: inout FuzzInput, vocabulary: [String]) -> String? {
    input.byte() % 3 == 0 ? string(&input, vocabulary: vocabulary) : nil
  }

  /// A date around `now` (milliseconds), or one of the dates that break arithmetic.
  static func date(_ input: inout FuzzInput, now: Int64) -> Date {
    switch input.byte() % 12 {
    case 0: return .distantPast
    case 1: return .distantFuture
    case 2: return Date(timeIntervalSince1970: .nan)
    case 3: return Date(timeIntervalSince1970: input.bool() ? .infinity : -.infinity)
    case 4: return Date(timeIntervalSince1970: input.bool() ? 1e300 : -1e300)
    case 5: return Date(timeIntervalSince1970: Double(now) / 1000 + 0.0004)
    default:
      return Date(timeIntervalSince1970: Double(now + Int64(input.int(in: -3000...3000))) / 1000)
    }
  }

  static func pattern(_ input: inout FuzzInput) -> CodePattern {
    switch input.byte() % 8 {
    case 0: return .alphanumeric
    case 1: return .hangulDigits
    default:
      let symbols: [Character] = [
        "A", "B", "C", "0", "1", "가", "나", "👍", "👍🏽", "é", "e\u{301}", "-", "\u{0}", " ", "\u{301}",
      ]
      var alphabet: [Character] = []
      for _ in 0..<input.pick([0, 1, 2, 2, 3, 4, 6]) { alphabet.append(input.pick(symbols)) }
      if input.byte() == 0xFF {
        alphabet = (0..<257).map { Character(Unicode.Scalar(UInt32(0x4E00 + $0))!) }
      }
      let length = input.pick([0, 1, 2, 3, 8, 10, 12, 20, 40, 64, 65])
      let group: Int? = input.bool() ? nil : input.int(in: 0...(length + 1))
      return CodePattern(
        alphabet: alphabet, length: length,
        prefix: input.pick(["", "P-", "가-", "\n", String(repeating: "x", count: 33), "SPRING-"]),
        groupSize: group, separator: input.pick(["-", " ", "\u{0}", "가", "A", "👍🏽"]))
    }
  }

  static func spec(_ input: inout FuzzInput, now: Int64) -> CampaignSpec {
    let id = input.byte() % 3 == 0 ? nil : string(&input, vocabulary: campaignIDs)
    let name = string(&input, vocabulary: ["spring", "", "봄 세일", "🎉 sale"])
    let stock =
      input.byte() < 0xF0
      ? input.pick([0, 1, 1, 2, 3, 5])
      : input.pick([
        -1, 1 << 32, (1 << 32) + 1, Int.max, Int.min,
      ])
    let startsAt = input.byte() % 3 == 0 ? Date.distantPast : date(&input, now: now)
    var endsAt: Date?
    switch input.byte() % 4 {
    case 0: endsAt = nil
    case 1: endsAt = date(&input, now: now)
    default:
      endsAt = startsAt.addingTimeInterval(Double(input.int(in: -100...5000)) / 1000)
    }
    let perUserLimit =
      input.byte() < 0xF0
      ? input.pick([1, 1, 2, 3])
      : input.pick([
        0, -1, 1 << 20, (1 << 20) + 1,
      ])
    let redemptions = input.byte() < 0xF0 ? input.pick([1, 2]) : input.pick([0, 65535, 65536])
    let codes: CodeSource = input.byte() % 4 == 0 ? .pool : .generated(pattern(&input))
    let lockTimeout =
      input.byte() < 0xF0
      ? input.pick([300, 1, 0.0005]) : input.pick([0, -1, .nan, .infinity, 31_536_000, 31_536_001])
    let expiresAt = input.bool() ? nil : date(&input, now: now)
    return CampaignSpec(
      id: id, name: name, stock: stock, startsAt: startsAt, endsAt: endsAt,
      perUserLimit: perUserLimit, redemptionsPerCoupon: redemptions, codes: codes,
      lockTimeout: lockTimeout, expiresAt: expiresAt)
  }
}
