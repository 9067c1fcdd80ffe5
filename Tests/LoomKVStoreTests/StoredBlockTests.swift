import LoomEngine
import LoomKernels
import LoomModel
import Testing
@testable import LoomKVStore

@Suite("KV store: the stored block's header")
struct StoredBlockTests {
    let layout = StoredLayout(layers: 2, kvHeads: 1, headDim: 4, blockSize: 4)
    let hasher = BlockHasher(modelID: 0xABCD, blockSize: 4)

    func block(parent: BlockHash? = nil, tokens: [TokenID] = [1, 2, 3, 4]) -> (StoredBlockHeader, [UInt8]) {
        let payload = (0..<layout.payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let header = payload.withUnsafeBytes {
            StoredBlockHeader(hash: hasher.hash(parent: parent, tokens: tokens), parent: parent, modelID: 0xABCD,
                              layout: layout, tokens: tokens, payload: $0)
        }
        return (header, payload)
    }

    @Test func crc32cMatchesTheStandardCheckValueOnBothPaths() {
        let check = Array("123456789".utf8)
        check.withUnsafeBytes { bytes in
            #expect(Kernels.crc32c(bytes) == 0xE306_9283)
            #expect(Kernels.crc32c(bytes, portable: true) == 0xE306_9283)
        }
        // 1000 takes one stream; the longer ones three, combined, with a tail.
        for count in [1000, 3072, 368_640, 100_003] {
            let long = (0..<count).map { UInt8(truncatingIfNeeded: $0 * 31 + $0 >> 7) }
            long.withUnsafeBytes { bytes in
                #expect(Kernels.crc32c(bytes) == Kernels.crc32c(bytes, portable: true), "\(count) bytes")
                for cut in [333, count / 2 + 5] {
                    let head = Kernels.crc32c(UnsafeRawBufferPointer(rebasing: bytes[..<cut]))
                    let split = Kernels.crc32c(UnsafeRawBufferPointer(rebasing: bytes[cut...]), continuing: head)
                    #expect(split == Kernels.crc32c(bytes), "continuing a checksum equals one pass (\(count) bytes cut at \(cut))")
                }
            }
        }
    }

    @Test func aHeaderRoundTripsAndVerifiesAgainstItsPayload() throws {
        let (first, payload) = block()
        let (second, _) = block(parent: first.hash, tokens: [5, 6, 7, 8])
        for header in [first, second] {
            let decoded = try StoredBlockHeader(decoding: header.encoded())
            #expect(decoded == header)
            #expect(header.encoded().count == header.encodedBytes)
            try payload.withUnsafeBytes { try decoded.verify(modelID: 0xABCD, layout: layout, payload: $0) }
        }
        #expect(second.parent == first.hash && first.parent == nil)
    }

    @Test func aFlippedByteInThePayloadIsCaughtByTheChecksum() {
        let (header, payload) = block()
        var damaged = payload
        damaged[17] ^= 0x01
        let refusal = #expect(throws: StoreError.self) {
            try damaged.withUnsafeBytes { try header.verify(modelID: 0xABCD, layout: layout, payload: $0) }
        }
        #expect(refusal?.code == .corrupt && refusal?.message.contains("\(header.hash)") == true, "the log line names the block")
    }

    @Test func aBlockForAnotherModelLayoutOrNameIsRefused() {
        let (header, payload) = block()
        func code(_ body: () throws -> Void) -> StoreError.Code? {
            do { try body(); return nil } catch { return (error as? StoreError)?.code }
        }
        payload.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            #expect(code { try header.verify(modelID: 0x1234, layout: layout, payload: bytes) } == .wrongModel)
            var other = layout
            other.headDim = 8
            #expect(code { try header.verify(modelID: 0xABCD, layout: other, payload: bytes) } == .wrongLayout)
            var misnamed = header
            misnamed.tokens[0] = 99
            #expect(code { try misnamed.verify(modelID: 0xABCD, layout: layout, payload: bytes) } == .wrongName)
            #expect(code { try header.verify(modelID: 0xABCD, layout: layout, payload: UnsafeRawBufferPointer(rebasing: bytes.dropLast())) } == .malformed)
        }
    }

    @Test func aTruncatedOrForeignHeaderIsRefusedNotMisread() {
        let encoded = block().0.encoded()
        for cut in [0, 3, 20, encoded.count - 1] {
            #expect(throws: StoreError.self, "cut at \(cut)") { try StoredBlockHeader(decoding: encoded.prefix(cut)) }
        }
        var foreign = encoded
        foreign[0] = 0
        #expect(throws: StoreError.self) { try StoredBlockHeader(decoding: foreign) }
    }
}
