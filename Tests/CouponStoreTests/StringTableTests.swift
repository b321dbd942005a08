import Testing

@testable import CouponStore

@Suite("String table")
struct StringTableTests {
  @Test
  func everyStringKeepsItsIdAndBytesAcrossGrowth() {
    // 50,000 strings from a table sized for 16: it doubles a dozen times, re-placing slots from
    // their tags; every string must still be found under its first id.
    var table = StringTable()
    let strings = (0..<50_000).map { "code-\($0 * 7919)" } + ["", "가나다", "x"]
    for (id, text) in strings.enumerated() {
      #expect(text.withUTF8Bytes { table.intern($0) } == UInt32(id))
    }
    #expect(table.count == strings.count)
    for (id, text) in strings.enumerated() {
      #expect(text.withUTF8Bytes { table.find($0) } == UInt32(id))
      #expect(table.string(of: UInt32(id)) == text)
      #expect(text.withUTF8Bytes { table.intern($0) } == UInt32(id), "interning twice adds nothing")
    }
    #expect(table.count == strings.count)
  }

  @Test
  func absentStringsAreNotFoundEvenWhenTheirLengthMatches() {
    var table = StringTable()
    for index in 0..<10_000 { _ = "K7QX2-\(10_000 + index)".withUTF8Bytes { table.insert($0) } }
    // Same length, same prefix, never inserted: every probe meets equal-length strings.
    for index in 0..<10_000 {
      #expect("K7QX2-\(20_000 + index)".withUTF8Bytes { table.find($0) } == nil)
    }
  }
}
