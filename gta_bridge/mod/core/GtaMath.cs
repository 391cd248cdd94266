// playmill GTA V recorder: float64 rotation helpers in GTA's frame (game-independent).
// GTA Euler vectors are [x, y, z] = [pitch, roll, yaw] in degrees with rotation order 2 (YXZ):
// R = Rz(yaw) * Rx(pitch) * Ry(roll), standard right-handed rotations about the world axes
// (X east, Y north, Z up). Body axes: +X right, +Y forward, +Z up.
using System;

namespace Playmill.GtaRecorder
{
    public static class GtaMath
    {
        const double Deg = Math.PI / 180.0;

        /// <summary>Row-major 3x3 rotation matrix of a GTA Euler vector (degrees).</summary>
        public static double[] EulerToMatrix(double pitchDeg, double rollDeg, double yawDeg)
        {
            double sa = Math.Sin(yawDeg * Deg), ca = Math.Cos(yawDeg * Deg);
            double sb = Math.Sin(pitchDeg * Deg), cb = Math.Cos(pitchDeg * Deg);
            double sc = Math.Sin(rollDeg * Deg), cc = Math.Cos(rollDeg * Deg);
            return new double[]
            {
                ca * cc - sa * sb * sc, -sa * cb, ca * sc + sa * sb * cc,
                sa * cc + ca * sb * sc, ca * cb, sa * sc - ca * sb * cc,
                -cb * sc, sb, cb * cc,
            };
        }

        /// <summary>GTA Euler vector [pitch, roll, yaw] (degrees; yaw in (-180, 180]) of a rotation matrix.</summary>
        public static Vec3d MatrixToEuler(double[] m)
        {
            double pitch = Math.Asin(Math.Max(-1.0, Math.Min(1.0, m[7])));
            double roll = Math.Atan2(-m[6], m[8]);
            double yaw = Math.Atan2(-m[1], m[4]);
            return new Vec3d(pitch / Deg, roll / Deg, yaw / Deg);
        }

        public static double[] Mul(double[] a, double[] b)
        {
            var r = new double[9];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    r[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
            return r;
        }

        public static Vec3d Apply(double[] m, Vec3d v)
        {
            return new Vec3d(m[0] * v.X + m[1] * v.Y + m[2] * v.Z,
                             m[3] * v.X + m[4] * v.Y + m[5] * v.Z,
                             m[6] * v.X + m[7] * v.Y + m[8] * v.Z);
        }

        /// <summary>Camera rotation of a rig: R_body * R(offset), as a GTA Euler vector.</summary>
        public static Vec3d RigRotation(Vec3d bodyEulerDeg, Vec3d offsetEulerDeg)
        {
            double[] rb = EulerToMatrix(bodyEulerDeg.X, bodyEulerDeg.Y, bodyEulerDeg.Z);
            double[] ro = EulerToMatrix(offsetEulerDeg.X, offsetEulerDeg.Y, offsetEulerDeg.Z);
            return MatrixToEuler(Mul(rb, ro));
        }

        /// <summary>Camera position of a rig: body position + R_body * offset (metres).</summary>
        public static Vec3d RigPosition(Vec3d bodyPos, Vec3d bodyEulerDeg, Vec3d offsetM)
        {
            Vec3d d = Apply(EulerToMatrix(bodyEulerDeg.X, bodyEulerDeg.Y, bodyEulerDeg.Z), offsetM);
            return new Vec3d(bodyPos.X + d.X, bodyPos.Y + d.Y, bodyPos.Z + d.Z);
        }

        /// <summary>Unit forward vector (+Y body axis) of a heading (degrees, counter-clockwise from north).</summary>
        public static Vec3d HeadingForward(double headingDeg)
        {
            return new Vec3d(-Math.Sin(headingDeg * Deg), Math.Cos(headingDeg * Deg), 0.0);
        }

        /// <summary>Angle wrapped into [0, 360).</summary>
        public static double Wrap360(double a)
        {
            double r = a % 360.0;
            return r < 0 ? r + 360.0 : r;
        }
    }
}
