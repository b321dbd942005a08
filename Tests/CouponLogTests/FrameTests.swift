import CouponLog
import Testing

@Suite struct FrameTests {
  let seed = Frame.checksumSeed(salt: 0x1122_3344_5566_7788)

  func encodedFrame(sequence: UInt64 = 9, type: UInt8 = 3, payload: [UInt8] = [1, 2, 3])
    -> [UInt8]
  {
    var writer = ByteWriter()
    Frame.append(to: &writer, sequence: sequence, type: type, seed: seed) {
      $0.appendBytes(payload)
    }
    return writer.bytes
  }

  @Test func frameLayoutMatchesTheFormat() {
    let bytes = encodedFrame()
    #expect(bytes.count == frameHeaderBytes + 3)
    #expect(Array(bytes[4..<8]) == [3, 0, 0, 0])  // payload length
    #expect(Array(bytes[8..<16]) == [9, 0, 0, 0, 0, 0, 0, 0])  // sequence
    #expect(Array(bytes[16..<20]) == [3, 9, 0, 0])  // type, sync lag (nothing known durable)
    #expect(Array(bytes[20...]) == [1, 2, 3])
    var crc = CRC32C()
    crc.update(littleEndian: 0x1122_3344_5566_7788)
    crc.update(Array(bytes[4...]))
    let stored =
      UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16
      | UInt32(bytes[3]) << 24
    #expect(stored == crc.value)
  }

  @Test func encodedFrameDecodesWithItsFields() {
    let bytes = encodedFrame()
    let decoded = bytes.withUnsafeBytes {
      Frame.decode($0, at: 0, seed: seed, expectedSequence: 9)
    }
    guard case .valid(let header) = decoded else {
      Issue.record("not valid: \(decoded)")
      return
    }
    #expect(header.sequence == 9 && header.type == 3 && header.payloadLength == 3)
    #expect(header.frameBytes == 23)
  }

  @Test func frameFromAnotherSaltDoesNotVerify() {
    let bytes = encodedFrame()
    let decoded = bytes.withUnsafeBytes {
      Frame.decode($0, at: 0, seed: Frame.checksumSeed(salt: 1), expectedSequence: 9)
    }
    guard case .invalid(.checksumMismatch) = decoded else {
      Issue.record("stale frame accepted: \(decoded)")
      return
    }
  }

  @Test func everySingleBitFlipIsDetected() {
    let bytes = encodedFrame(payload: Array(0..<40))
    for bit in 0..<(bytes.count * 8) {
      var damaged = bytes
      damaged[bit / 8] ^= UInt8(1 << (bit % 8))
      let decoded = damaged.withUnsafeBytes {
        Frame.decode($0, at: 0, seed: seed, expectedSequence: 9)
      }
      if case .valid = decoded { Issue.record("bit \(bit) flip accepted") }
    }
  }

  @Test func wrongSequenceIsInvalidEvenWhenTheChecksumVerifies() {
    let bytes = encodedFrame(sequence: 5)
    let decoded = bytes.withUnsafeBytes {
      Frame.decode($0, at: 0, seed: seed, expectedSequence: 6)
    }
    #expect(decoded == .invalid(.unexpectedSequence(expected: 6, found: 5)))
  }

  @Test func shortBuffersAreIncompleteWithTheBytesNeeded() {
    let bytes = encodedFrame()
    for count in 0..<bytes.count {
      let decoded = bytes.withUnsafeBytes {
        Frame.decode(
          UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: 0, seed: seed,
          expectedSequence: 9)
      }
      #expect(decoded == .incomplete(bytesNeeded: count < frameHeaderBytes ? 20 : 23))
    }
  }

  @Test func malformedHeadersAreRejectedBeforeTheChecksum() {
    var zeros = [UInt8](repeating: 0, count: 64)
    #expect(
      zeros.withUnsafeBytes { Frame.decode($0, at: 0, seed: seed, expectedSequence: nil) }
        == .invalid(.typeZero))
    zeros[16] = 1
    #expect(
      zeros.withUnsafeBytes { Frame.decode($0, at: 0, seed: seed, expectedSequence: nil) }
        == .invalid(.syncLagInvalid(0)))
    zeros[18] = 1  // a lag of 256 for sequence 0
    #expect(
      zeros.withUnsafeBytes { Frame.decode($0, at: 0, seed: seed, expectedSequence: nil) }
        == .invalid(.syncLagInvalid(256)))
    zeros[8] = 1
    zeros[9] = 1  // sequence 257
    zeros[4] = 0xFF
    zeros[5] = 0xFF
    zeros[6] = 0xFF
    #expect(
      zeros.withUnsafeBytes { Frame.decode($0, at: 0, seed: seed, expectedSequence: nil) }
        == .invalid(.payloadTooLong(0x00FF_FFFF)))
  }

  @Test func decoderNeverTrapsOnRandomBytes() {
    var random = SeededGenerator(seed: 0xF4A3E)
    for _ in 0..<5_000 {
      var bytes = random.bytes(Int.random(in: 0..<80, using: &random))
      if bytes.count > 20, Bool.random(using: &random) {
        bytes[17] = 0
        bytes[18] = 0
        bytes[19] = 0
        bytes[5] = 0
        bytes[6] = 0
        bytes[7] = 0
      }
      let offset = Int.random(in: 0...(bytes.count + 2), using: &random)
      _ = bytes.withUnsafeBytes {
        Frame.decode($0, at: offset, seed: seed, expectedSequence: random.next())
      }
    }
  }

  @Test func oversizedRecordTraps() async {
    await #expect(processExitsWith: .failure) {
      var writer = ByteWriter()
      Frame.append(to: &writer, sequence: 1, type: 1, seed: CRC32C()) {
        $0.appendBytes([UInt8](repeating: 0, count: recordBytesMax + 1))
      }
    }
  }

  @Test func typeZeroTraps() async {
    await #expect(processExitsWith: .failure) {
      var writer = ByteWriter()
      Frame.append(to: &writer, sequence: 1, type: 0, seed: CRC32C()) { _ in }
    }
  }
}
