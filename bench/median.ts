// The middle of a bench's rounds (the upper middle for an even count): one noisy round moves it less than a mean.
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
