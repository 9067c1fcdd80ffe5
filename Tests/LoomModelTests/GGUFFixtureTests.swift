import Foundation
import LoomKernels
import LoomModel
import LoomTesting
import Testing

/// Reads files written by the `gguf` Python package (scripts/golden/
/// gguf_goldens.py) and checks everything all-types.json says is in them.
@Suite("GGUF fixtures written by the gguf package")
struct GGUFFixtureTests {
    /// The GGUFValue a fixture's {"type", "value"} (or, for arrays,
    /// "element_type") describes; nil if the description is malformed.
    static func expectedValue(type: String, elementType: String?, _ json: FixtureJSON) -> GGUFValue? {
        func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            switch json {
            case .uint(let v): T(exactly: v)
            case .int(let v): T(exactly: v)
            default: nil
            }
        }
        switch type {
        case "uint8": return integer(UInt8.self).map(GGUFValue.uint8)
        case "int8": return integer(Int8.self).map(GGUFValue.int8)
        case "uint16": return integer(UInt16.self).map(GGUFValue.uint16)
        case "int16": return integer(Int16.self).map(GGUFValue.int16)
        case "uint32": return integer(UInt32.self).map(GGUFValue.uint32)
        case "int32": return integer(Int32.self).map(GGUFValue.int32)
        case "uint64": return integer(UInt64.self).map(GGUFValue.uint64)
        case "int64": return integer(Int64.self).map(GGUFValue.int64)
        case "float32": return json.double.map { .float32(Float($0)) }
        case "float64": return json.double.map(GGUFValue.float64)
        case "bool": if case .bool(let v) = json { return .bool(v) } else { return nil }
        case "string": return json.string.map(GGUFValue.string)
        case "array":
            guard let elementType else { return nil }
            var elements: [GGUFValue] = []
            for element in json.array {
                // A nested array is described as {"element_type", "value"}.
                let value = elementType == "array"
                    ? expectedValue(type: "array", elementType: element["element_type"].string, element["value"])
                    : expectedValue(type: elementType, elementType: nil, element)
                guard let value else { return nil }
                elements.append(value)
            }
            return .array(elements)
        default: return nil
        }
    }

    @Test("all-types(.gguf, -v2.gguf) hold exactly what all-types.json describes",
          arguments: [("all-types.gguf", UInt32(3)), ("all-types-v2.gguf", 2)])
    func allTypes(fileName: String, version: UInt32) throws {
        let expected = try FixtureJSON.load("gguf/all-types.json")
        let file = try GGUFFile(path: Fixtures.url("gguf/\(fileName)").path)

        #expect(expected["version"].int == 3, "the JSON describes the v3 file")
        #expect(file.version == version)
        #expect(file.alignment == expected["alignment"].int)
        #expect(file.dataOffset == expected["data_offset"].int)
        #expect(file.metadataKeys == expected["metadata_keys"].array.compactMap(\.string))
        #expect(file.metadataKeys.count == expected["kv_count"].int)
        #expect(file.metadata.count == file.metadataKeys.count)
        for key in expected["metadata"].keys {
            let entry = expected["metadata"][key]
            let value = try #require(
                Self.expectedValue(type: entry["type"].string ?? "", elementType: entry["element_type"].string, entry["value"]),
                "cannot read the fixture's description of '\(key)'")
            let read = try file.require(key)
            #expect(identical(read, value), "\(key): expected \(value), read \(read)")
        }

        let tensors = expected["tensors"].array
        #expect(file.tensors.count == expected["tensor_count"].int)
        #expect(file.tensors.map(\.name) == tensors.compactMap { $0["name"].string })
        for described in tensors {
            let info = try file.requireTensor(described["name"].string ?? "")
            #expect(info.dims == described["dims"].ints)
            #expect(Int(info.type.rawValue) == described["type"].int)
            #expect(info.type.name == described["type_name"].string)
            #expect(info.offset == described["offset"].int)
            #expect(info.byteCount == described["n_bytes"].int)
            let values = try #require(
                Kernels.dequantize(type: info.type.rawValue, source: file.bytes(of: info).baseAddress!, count: info.elementCount))
            #expect(values.map(\.bitPattern) == described["values"].floats.map(\.bitPattern), "\(info.name)")
        }
    }
}
