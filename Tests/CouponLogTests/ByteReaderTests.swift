import CouponLog
import Testing

@Suite struct ByteReaderTests {
  @Test func readsBackEverythingByteWriterWrites() throws {
    var writer = ByteWriter()
    writer.append(UInt8(7))
    writer.append(UInt16(0xBEEF))
    writer.append(UInt32(0xCAFE_BABE))
    writer.append(UInt64.max - 1)
    writer.append(Int64.min)
    for value: UInt64 in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, UInt64.max] {
      writer.appendVarint(value)
    }
    writer.appendString("")
    writer.appendString("SPRING-K7QX-2M9D 가나다")
    writer.appendBytes([1, 2, 3])
    try writer.bytes.withUnsafeBytes { buffer throws in
      var reader = ByteReader(buffer)
      #expect(try reader.readUInt8() == 7)
      #expect(try reader.readUInt16() == 0xBEEF)
      #expect(try reader.readUInt32() == 0xCAFE_BABE)
      #expect(try reader.readUInt64() == UInt64.max - 1)
      #expect(try reader.readInt64() == Int64.min)
      for value: UInt64 in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, UInt64.max] {
        #expect(try reader.readVarint() == value)
      }
      #expect(try reader.readString() == "")
      #expect(try reader.readString() == "SPRING-K7QX-2M9D 가나다")
      #expect(Array(try reader.readBytes(3)) == [1, 2, 3])
      #expect(reader.isAtEnd)
      #expect(throws: ByteReaderError.truncated(reader.offset)) { try reader.readUInt8() }
    }
  }

  @Test func shortInputIsTruncatedAtTheValuesOffset() {
    [UInt8(1), 2, 3].withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.truncated(0)) { try reader.readUInt32() }
      #expect(reader.offset == 0)
      #expect(throws: ByteReaderError.truncated(0)) { try reader.readBytes(4) }
    }
  }

  @Test func varintLongerThan64BitsIsMalformed() {
    let tooLong = [UInt8](repeating: 0xFF, count: 9) + [0x02]
    tooLong.withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.malformed(0, "varint does not fit in 64 bits")) {
        try reader.readVarint()
      }
    }
    [UInt8](repeating: 0x80, count: 12).withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.self) { try reader.readVarint() }
    }
  }

  @Test func invalidUTF8StringIsMalformed() {
    [UInt8(2), 0xC3, 0x28].withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.malformed(0, "string is not valid UTF-8")) {
        try reader.readString()
      }
    }
  }

  @Test func hugeStringLengthIsTruncatedNotATrap() {
    var writer = ByteWriter()
    writer.appendVarint(UInt64.max)
    writer.bytes.withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.truncated(0)) { try reader.readString() }
    }
  }

  @Test func negativeByteCountIsMalformed() {
    [UInt8(1)].withUnsafeBytes { buffer in
      var reader = ByteReader(buffer)
      #expect(throws: ByteReaderError.self) { try reader.readBytes(-1) }
      #expect(throws: ByteReaderError.self) { try reader.skip(Int.min) }
    }
  }

  @Test func neverTrapsOnRandomBytes() {
    var random = SeededGenerator(seed: 0xB17E5)
    for round in 0..<2_000 {
      let bytes = random.bytes(Int.random(in: 0..<64, using: &random))
      bytes.withUnsafeBytes { buffer in
        var reader = ByteReader(buffer)
        for _ in 0..<32 {
          do {
            switch Int.random(in: 0..<9, using: &random) {
            case 0: _ = try reader.readUInt8()
            case 1: _ = try reader.readUInt16()
            case 2: _ = try reader.readUInt32()
            case 3: _ = try reader.readUInt64()
            case 4: _ = try reader.readInt64()
            case 5: _ = try reader.readVarint()
            case 6: _ = try reader.readString()
            case 7: _ = try reader.readBytes(Int.random(in: -3..<20, using: &random))
            default: try reader.skip(Int(truncatingIfNeeded: random.next()))
            }
          } catch {
            // Any error is fine; a trap is not.
          }
          #expect(reader.offset >= 0 && reader.offset <= buffer.count, "round \(round)")
        }
      }
    }
  }
}
