// playmill GTA V recorder: the full-screen sync marker (game-independent).
// A 4 x 8 grid over a black full-screen rectangle. Row 0 is a finder pattern (white in even columns).
// Rows 1-3 hold 12 bits of the code, most significant first, each bit as two horizontally adjacent cells in
// reading order: (white, black) = 1, (black, white) = 0. The code is the tick index mod 4096, so every
// video frame of the marker says exactly which game tick it shows. Python twin: gta_bridge.sync.
using System.Collections.Generic;

namespace Playmill.GtaRecorder
{
    /// <summary>A rectangle for DRAW_RECT: centre and size in normalised screen units (0..1), RGBA 0..255.</summary>
    public struct MarkerRect
    {
        public double Cx, Cy, W, H;
        public int R, G, B, A;

        public MarkerRect(double cx, double cy, double w, double h, int r, int g, int b, int a)
        {
            Cx = cx; Cy = cy; W = w; H = h; R = r; G = g; B = b; A = a;
        }
    }

    public static class SyncMarker
    {
        public const int Rows = 4;
        public const int Cols = 8;
        public const int Bits = 12;
        public const int Modulus = 1 << Bits;

        /// <summary>Cell colours of a code, row-major (Rows * Cols), true = white.</summary>
        public static bool[] Cells(int code)
        {
            code &= Modulus - 1;
            var cells = new bool[Rows * Cols];
            for (int c = 0; c < Cols; c++) cells[c] = (c % 2) == 0;
            for (int b = 0; b < Bits; b++)
            {
                bool one = ((code >> (Bits - 1 - b)) & 1) == 1;
                int i = Cols + 2 * b;
                cells[i] = one;
                cells[i + 1] = !one;
            }
            return cells;
        }

        /// <summary>The rectangles to draw this frame, in order: a black full-screen rectangle, then one white
        /// rectangle per white cell.</summary>
        public static List<MarkerRect> Rects(int code)
        {
            var rects = new List<MarkerRect>();
            rects.Add(new MarkerRect(0.5, 0.5, 1.0, 1.0, 0, 0, 0, 255));
            bool[] cells = Cells(code);
            double w = 1.0 / Cols, h = 1.0 / Rows;
            for (int r = 0; r < Rows; r++)
                for (int c = 0; c < Cols; c++)
                    if (cells[r * Cols + c])
                        rects.Add(new MarkerRect((c + 0.5) * w, (r + 0.5) * h, w, h, 255, 255, 255, 255));
            return rects;
        }
    }
}
