// Draws Kiln's icons from simple shapes and writes them as PNGs (committed; rerun after a
// design change with `npm run icons`):
//   build/icon.png                      1024 px master: electron-builder derives macOS .icns and Windows .ico from it
//   build/icons/NxN.png                 Linux icon set (16…1024), also the window icon
//   build/icons/tray/{status}-{16,32}.png (+ @2x)  tray icons for idle, executing, paused, error
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng } from './png-encode';

type Color = readonly [r: number, g: number, b: number];
/** A shape in unit coordinates: x right, y down, both in [0, 1]. */
type Shape = (x: number, y: number) => boolean;
interface Layer {
  color: Color;
  shape: Shape;
}

const ORANGE: Color = [249, 115, 22];
const GREY: Color = [140, 140, 140];
const AMBER: Color = [217, 119, 6];
const RED: Color = [220, 38, 38];
const WHITE: Color = [255, 255, 255];
const FLAME: Color = [255, 240, 210];
const CHARCOAL: Color = [34, 29, 26];

/** The kiln: an arched oven door. `inset` shrinks it evenly, to draw outlines. */
function arch(inset = 0, box = { left: 0.14, right: 0.86, top: 0.14, bottom: 0.92 }): Shape {
  const r = (box.right - box.left) / 2 - inset;
  const cx = (box.left + box.right) / 2;
  const cy = box.top + (box.right - box.left) / 2;
  return (x, y) =>
    (x >= box.left + inset && x <= box.right - inset && y >= cy && y <= box.bottom - inset) ||
    (y < cy && (x - cx) ** 2 + (y - cy) ** 2 <= r * r);
}

/** A teardrop flame: a round base tapering to a tip. */
function flame(cx: number, baseY: number, r: number, tipY: number): Shape {
  return (x, y) => {
    if ((x - cx) ** 2 + (y - baseY) ** 2 <= r * r) return true;
    if (y < tipY || y > baseY) return false;
    const t = (y - tipY) / (baseY - tipY);
    return Math.abs(x - cx) <= r * t ** 0.7;
  };
}

const rect = (l: number, t: number, r: number, b: number): Shape => (x, y) => x >= l && x <= r && y >= t && y <= b;
const circle = (cx: number, cy: number, r: number): Shape => (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
const minus = (a: Shape, b: Shape): Shape => (x, y) => a(x, y) && !b(x, y);
const union = (...shapes: Shape[]): Shape => (x, y) => shapes.some((s) => s(x, y));

function roundedSquare(margin: number, radius: number): Shape {
  return (x, y) => {
    const lo = margin + radius;
    const hi = 1 - margin - radius;
    const dx = Math.max(lo - x, 0, x - hi);
    const dy = Math.max(lo - y, 0, y - hi);
    return x >= margin && x <= 1 - margin && y >= margin && y <= 1 - margin && dx * dx + dy * dy <= radius * radius;
  };
}

/** Renders layers (painted in order) with supersampling, so edges are smooth even at 16 px. */
function render(size: number, layers: Layer[]): Uint8Array {
  const ss = size <= 64 ? 8 : 4;
  const out = new Uint8Array(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const x = (px + (sx + 0.5) / ss) / size;
          const y = (py + (sy + 0.5) / ss) / size;
          // The topmost layer covering the sample wins (all layers are opaque).
          for (let i = layers.length - 1; i >= 0; i--) {
            const layer = layers[i]!;
            if (layer.shape(x, y)) {
              [r, g, b] = [r + layer.color[0], g + layer.color[1], b + layer.color[2]];
              a++;
              break;
            }
          }
        }
      }
      const o = (py * size + px) * 4;
      if (a > 0) {
        out[o] = Math.round(r / a);
        out[o + 1] = Math.round(g / a);
        out[o + 2] = Math.round(b / a);
        out[o + 3] = Math.round((255 * a) / (ss * ss));
      }
    }
  }
  return out;
}

const STROKE = 0.15;
const kilnFlame = flame(0.5, 0.7, 0.15, 0.38);

export const TRAY_ICONS: Record<'idle' | 'executing' | 'paused' | 'error', Layer[]> = {
  // Cold kiln: just the outline.
  idle: [{ color: GREY, shape: minus(arch(), arch(STROKE)) }],
  // Fired: filled, with a flame.
  executing: [
    { color: ORANGE, shape: arch() },
    { color: WHITE, shape: kilnFlame },
  ],
  // Paused: outline with pause bars.
  paused: [{ color: AMBER, shape: union(minus(arch(), arch(STROKE)), rect(0.37, 0.42, 0.46, 0.67), rect(0.54, 0.42, 0.63, 0.67)) }],
  // Problem: red, with an exclamation mark.
  error: [
    { color: RED, shape: arch() },
    { color: WHITE, shape: union(rect(0.43, 0.3, 0.57, 0.62), circle(0.5, 0.76, 0.075)) },
  ],
};

const APP_ICON: Layer[] = [
  { color: CHARCOAL, shape: roundedSquare(0.08, 0.2) },
  { color: ORANGE, shape: arch(0, { left: 0.27, right: 0.73, top: 0.22, bottom: 0.8 }) },
  { color: FLAME, shape: flame(0.5, 0.64, 0.1, 0.42) },
];

export const APP_ICON_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024];
export const TRAY_SIZES = [16, 32];

function main(): void {
  const buildDir = join(__dirname, '..', 'build');
  const iconsDir = join(buildDir, 'icons');
  const trayDir = join(iconsDir, 'tray');
  mkdirSync(trayDir, { recursive: true });
  const write = (path: string, size: number, layers: Layer[]): void => {
    writeFileSync(path, encodePng(size, size, render(size, layers)));
  };
  for (const size of APP_ICON_SIZES) write(join(iconsDir, `${size}x${size}.png`), size, APP_ICON);
  write(join(buildDir, 'icon.png'), 1024, APP_ICON);
  for (const [status, layers] of Object.entries(TRAY_ICONS)) {
    for (const size of TRAY_SIZES) {
      write(join(trayDir, `${status}-${size}.png`), size, layers);
      write(join(trayDir, `${status}-${size}@2x.png`), size * 2, layers);
    }
  }
  console.log(`icons written to ${buildDir}`);
}

if (require.main === module) main();
