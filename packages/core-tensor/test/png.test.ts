import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SkySenseError, decodePng, encodePng } from '../src/index';

/** A PNG assembled by hand: IHDR, optional extra chunks, IDAT of the given (already filtered) rows. */
function pngOf(width: number, height: number, colorType: number, rows: number[][], extra: [string, number[]][] = []): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, colorType, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...extra.map(([t, d]) => chunk(t, Buffer.from(d))),
    chunk('IDAT', deflateSync(Buffer.from(rows.flat()))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decodePng', () => {
  it('reads back what encodePng wrote', () => {
    const rgb = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37) % 256);
    const img = decodePng(encodePng(rgb, 5, 3));
    expect([img.width, img.height, img.channels]).toEqual([5, 3, 3]);
    expect([...img.data]).toEqual([...rgb]);
  });

  it('undoes every filter type (hand-filtered grey rows)', () => {
    // pixels: row0 = 10 20 30, row1 = 15 25 40, row2 = 5 50 60, row3 = 200 100 0, row4 = 1 2 3
    // Average row (above 15 25 40): a=0,b=15 → 7; a=5,b=25 → 15; a=50,b=40 → 45.
    // Paeth row (above 5 50 60): x0 a=0,b=5,c=0 → b; x1 a=200,b=50,c=5 → a; x2 a=100,b=60,c=50 → a.
    const rows = [
      [1, 10, 10, 10], // Sub: 10, 10+10, 20+10
      [2, 5, 5, 10], // Up: 10+5, 20+5, 30+10
      [3, 5 - 7, 50 - 15, 60 - 45],
      [4, 200 - 5, 100 - 200, 0 - 100],
      [0, 1, 2, 3],
    ].map((r) => r.map((v) => v & 0xff));
    const img = decodePng(pngOf(3, 5, 0, rows));
    expect(img.channels).toBe(1);
    expect([...img.data]).toEqual([10, 20, 30, 15, 25, 40, 5, 50, 60, 200, 100, 0, 1, 2, 3]);
  });

  it('expands palette images, with tRNS alpha', () => {
    const plte: [string, number[]] = ['PLTE', [255, 0, 0, 0, 255, 0]];
    expect([...decodePng(pngOf(2, 1, 3, [[0, 1, 0]], [plte])).data]).toEqual([0, 255, 0, 255, 0, 0]);
    expect([...decodePng(pngOf(2, 1, 3, [[0, 0, 1]], [plte, ['tRNS', [128]]])).data]).toEqual([255, 0, 0, 128, 0, 255, 0, 255]);
  });

  it('refuses corrupt, truncated and unsupported files with a clear error', () => {
    const good = encodePng(new Uint8Array(12), 2, 2);
    const flipped = good.slice();
    flipped[40] ^= 0xff;
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([1, 2, 3]), /mask.png: not a valid PNG \(no PNG signature\)/],
      [good.slice(0, good.length - 20), /mask.png: not a valid PNG/],
      [flipped, /CRC mismatch|corrupt/],
      [pngOf(2, 1, 3, [[0, 5, 0]], [['PLTE', [1, 2, 3]]]), /palette index 5 out of range/],
      [pngOf(2, 2, 0, [[0, 1, 2]]), /image data holds 3 bytes, 6 needed/],
      [pngOf(1, 1, 0, [[7, 1]]), /row 0 has filter type 7/],
      [
        pngOf(2, 1, 0, [[0, 1, 2], ...Array.from({ length: 5000 }, () => [0, 0, 0])]),
        /image data does not inflate to the 2×1 the header states/,
      ],
    ];
    for (const [bytes, msg] of cases) {
      expect(() => decodePng(bytes, 'mask.png')).toThrow(SkySenseError);
      expect(() => decodePng(bytes, 'mask.png')).toThrow(msg);
    }
  });
});

describe('decodePng size budget', () => {
  it('an image whose header declares more than the budget is refused before inflating', () => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(40000, 0);
    ihdr.writeUInt32BE(40000, 4);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(body));
      return Buffer.concat([len, body, crc]);
    };
    const bomb = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(Buffer.alloc(1 << 20))),
      chunk('IEND', Buffer.alloc(0)),
    ]);
    const rss0 = process.memoryUsage().rss;
    expect(() => decodePng(bomb, 'bomb.png')).toThrow(
      /^E_LIMIT: bomb\.png: decoding needs 9\.6 GB \(40000 × 40000 px × 3 channel\(s\), filtered and unfiltered\), over the 4\.3 GB budget/,
    );
    expect(process.memoryUsage().rss - rss0).toBeLessThan(100e6);
  });
});
