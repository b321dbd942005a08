import CouponLog
import Testing

@Suite struct ByteWriterTests {
  @Test func integersAreWrittenLittleEndian() {
    var writer = ByteWriter()
    writer.append(UInt8(0xAB))
    writer.append(UInt16(0x0102))
    writer.append(UInt32(0x0304_0506))
    writer.append(UInt64(0x0708_090A_0B0C_0D0E))
    writer.append(Int64(-2))
    #expect(
      writer.bytes == [
        0xAB, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A, 0x09, 0x08, 0x07,
        0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      ])
    #expect(writer.count == 23)
  }

  @Test func varintsAreLEB128() {
    func encoded(_ value: UInt64) -> [UInt8] {
      var writer = ByteWriter()
      writer.appendVarint(value)
      return writer.bytes
    }
    #expect(encoded(0) == [0])
    #expect(encoded(127) == [0x7F])
    #expect(encoded(128) == [0x80, 0x01])
    #expect(encoded(300) == [0xAC, 0x02])
    #expect(encoded(UInt64.max) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
  }

  @Test func stringsAreLengthPrefixedUTF8() {
    var writer = ByteWriter()
    writer.appendString("가1")
    #expect(writer.bytes == [4, 0xEA, 0xB0, 0x80, 0x31])
  }

  @Test func patchesOverwriteInPlace() {
    var writer = ByteWriter()
    writer.append(UInt32(0))
    writer.append(UInt64(0))
    writer.patchUInt32(0xDEAD_BEEF, at: 0)
    writer.patchUInt64(1, at: 4)
    #expect(writer.bytes == [0xEF, 0xBE, 0xAD, 0xDE, 1, 0, 0, 0, 0, 0, 0, 0])
  }

  @Test func patchOutsideWrittenBytesTraps() async {
    await #expect(processExitsWith: .failure) {
      var writer = ByteWriter()
      writer.append(UInt16(0))
      writer.patchUInt32(1, at: 0)
    }
  }
}
