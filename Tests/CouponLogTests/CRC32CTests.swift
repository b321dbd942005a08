import CouponLog
import Testing

/// Bit-at-a-time CRC-32C, the definition the slicing-by-8 tables must agree with.
private func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
  }
  return ~crc
}

@Suite struct CRC32CTests {
  @Test func checkValueOf123456789IsE3069283() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
  }

  @Test func emptyInputChecksumsToZero() {
    #expect(CRC32C.checksum([]) == 0)
    #expect(CRC32C().value == 0)
  }

  /// The test vectors of RFC 3720 (iSCSI), appendix B.4.
  @Test func rfc3720VectorsMatch() {
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
    let readCommand: [UInt8] = [
      0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    #expect(CRC32C.checksum(readCommand) == 0xD996_3A56)
  }

  @Test func slicingBy8AgreesWithBitwiseDefinitionAtEveryLengthAndAlignment() {
    var random = SeededGenerator(seed: 0xC3C3)
    let data = random.bytes(300)
    for start in 0..<9 {
      for length in 0..<(data.count - start) where length < 40 || length % 13 == 0 {
        let slice = Array(data[start..<(start + length)])
        let fast = data.withUnsafeBytes {
          CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)]))
        }
        #expect(fast == referenceCRC32C(slice), "start \(start) length \(length)")
      }
    }
  }

  @Test func incrementalUpdatesEqualOneShotChecksum() {
    var random = SeededGenerator(seed: 7)
    for _ in 0..<200 {
      let data = random.bytes(Int.random(in: 0..<200, using: &random))
      let split = Int.random(in: 0...data.count, using: &random)
      var crc = CRC32C()
      crc.update(Array(data[..<split]))
      crc.update(Array(data[split...]))
      #expect(crc.value == CRC32C.checksum(data))
    }
  }

  @Test func littleEndianUpdateEqualsUpdateWithItsBytes() {
    var a = CRC32C()
    a.update(littleEndian: 0x0102_0304_0506_0708)
    var b = CRC32C()
    b.update([8, 7, 6, 5, 4, 3, 2, 1])
    #expect(a == b)
  }
}
